//! `waihu analytics ...`: 同态加密分析 — sensitive numbers encrypted with Paillier, summed per
//! group by a process that holds only the public key, decrypted (k-anonymous groups only) by
//! the holder of the private key, which never needs to be on the server.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use waihu_he::{Aggregator, Encrypted, GroupSum, PrivateKey, PublicKey};

use crate::ctx::print_json;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 生成密钥: a Paillier key pair (2048-bit modulus). The public key goes to the server;
    /// keep the private key elsewhere (file mode 0600).
    Keygen {
        /// Directory for `paillier.pub.json` and `paillier.key.json`.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// 加密: encrypt one numeric column of a CSV, per row, with the group it belongs to.
    /// Writes JSON lines `{"group": ..., "c": HEX}`; rows with an empty value are skipped, bad
    /// values are reported with their line and kept out.
    Encrypt {
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// CSV with a header row (UTF-8).
        csv: PathBuf,
        /// The column to encrypt (e.g. order_amount).
        #[arg(long)]
        column: String,
        /// The column that names each row's group (e.g. segment); all rows in one group without.
        #[arg(long)]
        group_by: Option<String>,
        /// Fixed-point scale: 100 keeps two decimals (元 → 分).
        #[arg(long, default_value_t = 100)]
        scale: u64,
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
    },
    /// 密文求和: sum encrypted values per group with the public key only (no private key is
    /// read or needed). Prints the encrypted sums as JSON.
    Sum {
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// JSON lines from `encrypt`.
        input: PathBuf,
    },
    /// 解密报告: decrypt the sums of groups with at least k values; smaller groups are refused.
    Decrypt {
        #[arg(long, value_name = "FILE")]
        private_key: PathBuf,
        /// The JSON printed by `sum`.
        sums: PathBuf,
        #[arg(long, default_value_t = waihu_he::DEFAULT_K)]
        k: u64,
        #[arg(long, default_value_t = 100)]
        scale: u64,
        #[arg(long)]
        json: bool,
    },
    /// 密钥分持: split the private key into two shares for two holders (2-of-2). Neither
    /// share decrypts anything alone; destroy the whole key afterwards.
    SplitKey {
        #[arg(long, value_name = "FILE")]
        private_key: PathBuf,
        /// Directory for `paillier.share1.json` and `paillier.share2.json` (mode 0600).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// One holder's partial decryption of the sums (groups below k refused here too).
    Partial {
        #[arg(long, value_name = "FILE")]
        share: PathBuf,
        /// The JSON printed by `sum`.
        sums: PathBuf,
        #[arg(long, default_value_t = waihu_he::DEFAULT_K)]
        k: u64,
    },
    /// Both holders' partials → the report (public key only).
    Combine {
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The two files printed by `partial` (one per share).
        partials: Vec<PathBuf>,
        #[arg(long, default_value_t = waihu_he::DEFAULT_K)]
        k: u64,
        #[arg(long, default_value_t = 100)]
        scale: u64,
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Keygen { out } => keygen(&out),
        Cmd::Encrypt {
            public_key,
            csv,
            column,
            group_by,
            scale,
            out,
        } => encrypt(&public_key, &csv, &column, group_by.as_deref(), scale, &out),
        Cmd::Sum { public_key, input } => {
            let pk = PublicKey::from_json(&read(&public_key)?)
                .with_context(|| public_key.display().to_string())?;
            let mut agg = Aggregator::new(pk);
            for (i, line) in read(&input)?.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let at = || format!("{}:{}", input.display(), i + 1);
                let row: Row = serde_json::from_str(line).with_context(at)?;
                let c = Encrypted::from_hex(&row.c).with_context(at)?;
                agg.push(&row.group, &c).with_context(at)?;
            }
            print_json(&agg.finish())
        }
        Cmd::Decrypt {
            private_key,
            sums,
            k,
            scale,
            json,
        } => {
            let sk = PrivateKey::from_json(&read(&private_key)?)
                .with_context(|| private_key.display().to_string())?;
            let sums: Vec<GroupSum> = serde_json::from_str(&read(&sums)?).with_context(|| {
                format!("{}: not the output of `analytics sum`", sums.display())
            })?;
            let r = waihu_he::decrypt_report(&sk, &sums, k, scale);
            print_report(&r, json)
        }
        Cmd::SplitKey { private_key, out } => {
            let sk = PrivateKey::from_json(&read(&private_key)?)
                .with_context(|| private_key.display().to_string())?;
            let (a, b) = sk.split()?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let paths = [
                out.join("paillier.share1.json"),
                out.join("paillier.share2.json"),
            ];
            for (path, share) in paths.iter().zip([&a, &b]) {
                write_private(path, &share.to_json())?;
            }
            println!(
                "分持 / shares: {} and {} — give one to each holder, then destroy {}",
                paths[0].display(),
                paths[1].display(),
                private_key.display()
            );
            Ok(())
        }
        Cmd::Partial { share, sums, k } => {
            let sh = waihu_he::KeyShare::from_json(&read(&share)?)
                .with_context(|| share.display().to_string())?;
            let sums: Vec<GroupSum> = serde_json::from_str(&read(&sums)?).with_context(|| {
                format!("{}: not the output of `analytics sum`", sums.display())
            })?;
            let (r, refused) = waihu_he::partial_report(&sh, &sums, k);
            for e in &refused {
                eprintln!("拒绝 / refused: {e}");
            }
            print_json(&r)
        }
        Cmd::Combine {
            public_key,
            partials,
            k,
            scale,
            json,
        } => {
            let [a, b] = partials.as_slice() else {
                anyhow::bail!("give exactly two partial files, one from each share's holder");
            };
            let pk = PublicKey::from_json(&read(&public_key)?)
                .with_context(|| public_key.display().to_string())?;
            let load = |p: &PathBuf| -> anyhow::Result<waihu_he::PartialReport> {
                serde_json::from_str(&read(p)?).with_context(|| {
                    format!("{}: not the output of `analytics partial`", p.display())
                })
            };
            let r = waihu_he::combine_report(&pk, &load(a)?, &load(b)?, k, scale)?;
            print_report(&r, json)
        }
    }
}

fn print_report(r: &waihu_he::Report, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    println!("分组 / group\t数量 / count\t合计 / sum\t平均 / mean");
    for g in &r.groups {
        println!("{}\t{}\t{:.2}\t{:.2}", g.group, g.count, g.sum, g.mean);
    }
    for e in &r.refused {
        println!("拒绝 / refused: {e}");
    }
    Ok(())
}

/// Create `path` with mode 0600; an existing file is an error (never overwritten).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    group: String,
    c: String,
}

fn keygen(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pub_path = out.join("paillier.pub.json");
    let key_path = out.join("paillier.key.json");
    // The private key file first: if one exists, nothing (not even the public key, which
    // would then no longer match it) is written.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .with_context(|| format!("creating {} (it must not exist yet)", key_path.display()))?
    };
    let (pk, sk) = waihu_he::generate()?;
    f.write_all(sk.to_json().as_bytes())?;
    std::fs::write(&pub_path, pk.to_json())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    println!(
        "公钥 / public key: {} ({} bits)\n私钥 / private key: {} — keep it off the analytics server",
        pub_path.display(),
        pk.bits(),
        key_path.display()
    );
    Ok(())
}

fn encrypt(
    public_key: &Path,
    csv_path: &Path,
    column: &str,
    group_by: Option<&str>,
    scale: u64,
    out: &Path,
) -> anyhow::Result<()> {
    let pk = PublicKey::from_json(&read(public_key)?)
        .with_context(|| public_key.display().to_string())?;
    let mut rd = csv::Reader::from_path(csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let headers = rd.headers()?.clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no column {name:?} (columns: {})",
                    csv_path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let value_col = find(column)?;
    let group_col = group_by.map(find).transpose()?;
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    let (mut written, mut bad, mut empty) = (0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}:{line}: {e}", csv_path.display());
                bad += 1;
                continue;
            }
        };
        let raw = rec.get(value_col).unwrap_or("").trim();
        if raw.is_empty() {
            empty += 1;
            continue;
        }
        let value = match raw
            .parse::<f64>()
            .map_err(anyhow::Error::from)
            .and_then(|v| waihu_he::to_fixed(v, scale).map_err(anyhow::Error::from))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "{}:{line}: column {column}: {raw:?}: {e}",
                    csv_path.display()
                );
                bad += 1;
                continue;
            }
        };
        let group = group_col
            .and_then(|g| rec.get(g))
            .unwrap_or("all")
            .trim()
            .to_string();
        let c = pk.encrypt(value)?;
        serde_json::to_writer(
            &mut w,
            &Row {
                group,
                c: c.to_hex(),
            },
        )?;
        w.write_all(b"\n")?;
        written += 1;
        if written % 100 == 0 {
            let rate = written as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!("加密 / encrypted {written} ({rate:.0}/s)");
        }
    }
    w.flush()?;
    println!(
        "加密 / encrypted: {written}, 空值 / empty: {empty}, 错误 / bad rows: {bad} → {}",
        out.display()
    );
    Ok(())
}
