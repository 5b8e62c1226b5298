//! Homomorphic analytics through the binary: keys made, a CSV column encrypted per group,
//! the sums computed in a directory that holds only the public key, and the key holder's
//! report equal to the plaintext sums — with the small group refused and bad rows reported.
use std::path::Path;
use std::process::Command;

fn waihu(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_waihu"))
        .current_dir(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("run waihu")
}

fn ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = waihu(dir, args);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "waihu {args:?}: {se}\n{so}");
    (so, se)
}

#[test]
fn encrypted_sums_per_segment_decrypt_to_the_plaintext_sums() {
    let holder = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    let (out, _) = ok(
        holder.path(),
        &[
            "analytics",
            "keygen",
            "--out",
            holder.path().to_str().unwrap(),
        ],
    );
    assert!(out.contains("paillier.pub.json"), "{out}");
    let key = holder.path().join("paillier.key.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second keygen never overwrites the private key, nor the public key that matches it.
    let public_before = std::fs::read(holder.path().join("paillier.pub.json")).unwrap();
    assert!(!waihu(
        holder.path(),
        &[
            "analytics",
            "keygen",
            "--out",
            holder.path().to_str().unwrap()
        ]
    )
    .status
    .success());
    assert_eq!(
        std::fs::read(holder.path().join("paillier.pub.json")).unwrap(),
        public_before
    );
    // The analytics server gets the public key only.
    std::fs::copy(
        holder.path().join("paillier.pub.json"),
        server.path().join("paillier.pub.json"),
    )
    .unwrap();
    let mut csv = String::from("customer,segment,order_amount\n");
    let mut want = std::collections::BTreeMap::<&str, (u64, u64)>::new();
    for i in 0..27u64 {
        let seg = match i % 9 {
            0 => "vip",
            1..=4 => "新客",
            _ => "老客",
        };
        let fen = 1_000 + i * 137;
        csv.push_str(&format!("c{i},{seg},{}.{:02}\n", fen / 100, fen % 100));
        let e = want.entry(seg).or_default();
        e.0 += 1;
        e.1 += fen;
    }
    csv.push_str("bad1,新客,abc\nbad2,老客,-5\nempty,老客,\n");
    std::fs::write(server.path().join("orders.csv"), csv).unwrap();
    let (out, err) = ok(
        server.path(),
        &[
            "analytics",
            "encrypt",
            "--public-key",
            "paillier.pub.json",
            "orders.csv",
            "--column",
            "order_amount",
            "--group-by",
            "segment",
            "-o",
            "amounts.jsonl",
        ],
    );
    assert!(
        out.contains("encrypted: 27, 空值 / empty: 1, 错误 / bad rows: 2"),
        "{out}"
    );
    assert!(
        err.contains("orders.csv:29") && err.contains("orders.csv:30"),
        "{err}"
    );
    let (sums, _) = ok(
        server.path(),
        &[
            "analytics",
            "sum",
            "--public-key",
            "paillier.pub.json",
            "amounts.jsonl",
        ],
    );
    // The server's output carries ciphertexts only: every group's sum is a long hex number, and no
    // field holds a plaintext sum (in fen or in yuan). A substring check would be wrong: a random
    // 500-digit hex ciphertext contains any given 5-digit number now and then.
    let parsed: serde_json::Value = serde_json::from_str(sums.trim()).unwrap();
    let plain: Vec<String> = want
        .values()
        .flat_map(|(_, fen)| [fen.to_string(), format!("{}.{:02}", fen / 100, fen % 100)])
        .collect();
    fn leaves(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| leaves(x, out)),
            serde_json::Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }
    let mut all = Vec::new();
    leaves(&parsed, &mut all);
    assert!(all.iter().all(|x| !plain.contains(x)), "{sums}");
    let groups = parsed.as_array().expect("an array of groups");
    assert_eq!(groups.len(), 3, "{sums}");
    for g in groups {
        let ct = g["sum"].as_str().expect("hex sum");
        assert!(
            ct.len() > 100 && ct.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sums}"
        );
    }
    std::fs::write(holder.path().join("sums.json"), &sums).unwrap();
    let (report, _) = ok(
        holder.path(),
        &[
            "analytics",
            "decrypt",
            "--private-key",
            "paillier.key.json",
            "sums.json",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{v}");
    for g in groups {
        let (n, fen) = want[g["group"].as_str().unwrap()];
        assert_eq!(g["count"], n, "{v}");
        assert!(
            (g["sum"].as_f64().unwrap() - fen as f64 / 100.0).abs() < 1e-6,
            "{v}"
        );
    }
    // The 3-customer VIP group is below k = 10: refused, its sum never decrypted.
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{v}");
    assert!(refused[0].as_str().unwrap().contains("vip"), "{v}");
    // Two holders: the key split, each share in its own directory, the report combined
    // from both partials equals the one the whole key gave; one share twice is refused.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ok(
        holder.path(),
        &[
            "analytics",
            "split-key",
            "--private-key",
            "paillier.key.json",
            "--out",
            "shares",
        ],
    );
    for (i, d) in [(1, &a), (2, &b)] {
        let name = format!("paillier.share{i}.json");
        std::fs::rename(
            holder.path().join("shares").join(&name),
            d.path().join(&name),
        )
        .unwrap();
        std::fs::write(d.path().join("sums.json"), &sums).unwrap();
        let (partial, err) = ok(
            d.path(),
            &["analytics", "partial", "--share", &name, "sums.json"],
        );
        assert!(
            err.contains("vip"),
            "the small group is refused by each holder: {err}"
        );
        std::fs::write(server.path().join(format!("p{i}.json")), partial).unwrap();
    }
    let (combined, _) = ok(
        server.path(),
        &[
            "analytics",
            "combine",
            "--public-key",
            "paillier.pub.json",
            "p1.json",
            "p2.json",
            "--json",
        ],
    );
    let c: serde_json::Value = serde_json::from_str(combined.trim()).unwrap();
    assert_eq!(c["groups"], v["groups"], "{c}");
    let out = waihu(
        server.path(),
        &[
            "analytics",
            "combine",
            "--public-key",
            "paillier.pub.json",
            "p1.json",
            "p1.json",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of each share"));
    // A tampered sum file is an error with its line, not a panic.
    std::fs::write(
        server.path().join("bad.jsonl"),
        "{\"group\":\"x\",\"c\":\"00\"}\n",
    )
    .unwrap();
    let out = waihu(
        server.path(),
        &[
            "analytics",
            "sum",
            "--public-key",
            "paillier.pub.json",
            "bad.jsonl",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:1"));
}
