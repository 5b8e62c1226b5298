//! `waihu bench paillier`: the cost of homomorphic analytics. Key generation, encryption,
//! addition and decryption per operation, then a campaign report — the sum and mean of
//! `--values` amounts over `--groups` segments — computed on Paillier ciphertexts with the
//! public key only, beside the same report over the plaintext amounts, in the same run.
//!
//! Encryption costs a 2048-bit-exponent modular power (tens of ms), so the report sums
//! `--values` ciphertexts drawn round-robin from `--distinct` real encryptions; adding is
//! what the report does, and its cost does not depend on which ciphertexts are added.
use std::time::Instant;

use serde::Serialize;
use waihu_he::{Aggregator, Encrypted};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Values in the report.
    #[arg(long, default_value_t = 1_000_000)]
    values: u64,
    /// Real encryptions (the report cycles over them).
    #[arg(long, default_value_t = 200)]
    distinct: u64,
    /// Groups (segments) of the report.
    #[arg(long, default_value_t = 20)]
    groups: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub key_bits: usize,
    pub keygen_s: f64,
    pub encrypt_ms: f64,
    pub add_us: f64,
    pub decrypt_ms: f64,
    pub values: u64,
    pub groups: u64,
    pub encrypted_report_s: f64,
    pub plaintext_report_s: f64,
    /// encrypted / plaintext wall time.
    pub ratio: f64,
    /// The decrypted report equals the plaintext one (sum per group).
    pub equal: bool,
}

pub fn measure(a: &Args) -> anyhow::Result<Figures> {
    let distinct = a.distinct.max(1);
    let groups = a.groups.max(1);
    let t = Instant::now();
    let (pk, sk) = waihu_he::generate()?;
    let keygen_s = t.elapsed().as_secs_f64();
    // Amounts in fen: 0.01 .. 9,999.99 yuan, deterministic.
    let amount = |i: u64| (i.wrapping_mul(2_654_435_761) % 999_999) + 1;
    let t = Instant::now();
    let mut cts: Vec<Encrypted> = Vec::with_capacity(distinct as usize);
    for i in 0..distinct {
        cts.push(pk.encrypt(amount(i))?);
        if (i + 1) % 50 == 0 || i + 1 == distinct {
            let el = t.elapsed().as_secs_f64();
            eprintln!(
                "encrypting {}/{distinct} ({:.0}/s, {:.0} s left)",
                i + 1,
                (i + 1) as f64 / el,
                el / (i + 1) as f64 * (distinct - i - 1) as f64
            );
        }
    }
    let encrypt_ms = t.elapsed().as_secs_f64() * 1000.0 / distinct as f64;

    // The report over ciphertexts: public key only.
    let t = Instant::now();
    let mut agg = Aggregator::new(pk.clone());
    let step = (a.values / 10).max(1);
    for i in 0..a.values {
        agg.push(
            &format!("segment-{:02}", i % groups),
            &cts[(i % distinct) as usize],
        )?;
        if (i + 1) % step == 0 {
            let el = t.elapsed().as_secs_f64();
            eprintln!(
                "summing {}/{} ({:.0}/s, {:.0} s left)",
                i + 1,
                a.values,
                (i + 1) as f64 / el,
                el / (i + 1) as f64 * (a.values - i - 1) as f64
            );
        }
    }
    let sums = agg.finish();
    let encrypted_report_s = t.elapsed().as_secs_f64();
    let adds = a.values.max(1) as f64;

    // The same report over the plaintext amounts.
    let t = Instant::now();
    let mut plain = vec![(0u64, 0u128); groups as usize];
    for i in 0..a.values {
        let g = &mut plain[(i % groups) as usize];
        g.0 += 1;
        g.1 += u128::from(amount(i % distinct));
    }
    let plaintext_report_s = t.elapsed().as_secs_f64().max(1e-9);
    std::hint::black_box(&plain);

    let t = Instant::now();
    let report = waihu_he::decrypt_report(&sk, &sums, 1, 1);
    let decrypt_ms = t.elapsed().as_secs_f64() * 1000.0 / sums.len().max(1) as f64;
    let equal = report.refused.is_empty()
        && report.groups.len() == plain.iter().filter(|g| g.0 > 0).count()
        && report
            .groups
            .iter()
            .zip(plain.iter().filter(|g| g.0 > 0))
            .all(|(r, p)| r.count == p.0 && r.sum as u128 == p.1);
    Ok(Figures {
        key_bits: pk.bits(),
        keygen_s,
        encrypt_ms,
        add_us: encrypted_report_s * 1e6 / adds,
        decrypt_ms,
        values: a.values,
        groups,
        encrypted_report_s,
        plaintext_report_s,
        ratio: encrypted_report_s / plaintext_report_s,
        equal,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let f = measure(&a)?;
    if a.json {
        println!("{}", serde_json::to_string(&f)?);
    } else {
        println!(
            "Paillier {} bits: keygen {:.2} s, encrypt {:.1} ms, add {:.1} µs, decrypt {:.1} ms",
            f.key_bits, f.keygen_s, f.encrypt_ms, f.add_us, f.decrypt_ms
        );
        println!(
            "report over {} values in {} groups: encrypted {:.2} s vs plaintext {:.4} s ({:.0}×); decrypted sums equal the plaintext sums: {}",
            f.values, f.groups, f.encrypted_report_s, f.plaintext_report_s, f.ratio, f.equal
        );
    }
    anyhow::ensure!(
        f.equal,
        "the decrypted report differs from the plaintext report"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short bounded run of the benchmark (the long one is on demand).
    #[test]
    fn smoke() {
        let f = measure(&Args {
            values: 2_000,
            distinct: 5,
            groups: 3,
            json: true,
        })
        .unwrap();
        assert!(f.equal, "{f:?}");
        assert_eq!(f.values, 2_000);
        assert_eq!(f.key_bits, waihu_he::MODULUS_BITS);
    }
}
