//! `waihu bench geo`: the 号段归属地 table (waihu-geo) — load time of the
//! installed table and lookups per second, beside a `HashMap` of the raw
//! 7-digit segments (the obvious implementation: one entry per segment, as
//! phone.dat lists them) built from the same data in the same run.
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use waihu_geo::Table;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The table (default: where scripts/deps/geo.sh installs it).
    #[arg(long)]
    table: Option<PathBuf>,
    /// Lookups per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    lookups: usize,
    /// Loads to time (the median is reported).
    #[arg(long, default_value_t = 5)]
    loads: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub source: String,
    pub file_bytes: u64,
    pub segments: u64,
    pub runs: usize,
    pub places: usize,
    pub area_codes: usize,
    /// Median of `loads`: read the file and parse it.
    pub load_ms: f64,
    /// Baseline: expand the runs into a HashMap, one entry per segment.
    pub hashmap_build_ms: f64,
    pub table_bytes: usize,
    pub hashmap_bytes: usize,
    pub lookups: usize,
    /// Share of the probes the table knows.
    pub hit_rate: f64,
    /// `Table::lookup` on written numbers (`+86 138...`: normalising included).
    pub lookup_str_per_s: f64,
    /// `Table::segment` on the 7-digit prefix (binary search over the runs).
    pub segment_per_s: f64,
    /// Baseline: `HashMap::get` on the same 7-digit prefix.
    pub hashmap_per_s: f64,
    /// Fixed lines (`+86 755 ...`) by area code.
    pub fixed_line_per_s: f64,
    /// Every probe answered the same by the table and the HashMap.
    pub agree: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn measure(data_dir: &Path, a: &Args) -> anyhow::Result<Figures> {
    let path = a
        .table
        .clone()
        .unwrap_or_else(|| waihu_geo::default_path(data_dir));
    if !path.exists() {
        anyhow::bail!(
            "no 号段归属地 table at {} (install it: bash scripts/deps/geo.sh)",
            path.display()
        );
    }
    let file_bytes = std::fs::metadata(&path)?.len();
    let mut loads = Vec::new();
    let mut table = None;
    for _ in 0..a.loads.max(1) {
        let t = Instant::now();
        let text = std::fs::read_to_string(&path)?;
        let parsed = Table::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
        loads.push(t.elapsed().as_secs_f64() * 1e3);
        table = Some(parsed);
    }
    let table = table.expect("at least one load");
    let runs: Vec<(u32, u32)> = table.runs().collect();

    // Baseline: one HashMap entry per raw segment, valued by its place name.
    let mut builds = Vec::new();
    let mut map = HashMap::new();
    for _ in 0..a.loads.max(1) {
        let t = Instant::now();
        let mut m: HashMap<u32, (u16, u8)> = HashMap::with_capacity(table.segments() as usize);
        for (i, &(s, c)) in runs.iter().enumerate() {
            for seg in s..s + c {
                m.insert(seg, ((i & 0xffff) as u16, 0));
            }
        }
        builds.push(t.elapsed().as_secs_f64() * 1e3);
        map = m;
    }

    // Probes: 3 in 4 from a known run, the rest anywhere in 130..199 (deterministic).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let n = a.lookups.max(1);
    let segs: Vec<u32> = (0..n)
        .map(|_| {
            let r = next();
            if r % 4 != 0 {
                let (s, c) = runs[(r >> 8) as usize % runs.len()];
                s + (r >> 40) as u32 % c
            } else {
                1_300_000 + (r >> 8) as u32 % 700_000
            }
        })
        .collect();
    let written: Vec<String> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| format!("+86{s}{:04}", i % 10_000))
        .collect();
    let fixed: Vec<String> = (0..n)
        .map(|i| {
            let code = ["10", "21", "755", "24", "571", "311"][i % 6];
            format!("+86 {code} {:08}", 20_000_000 + i % 70_000_000)
        })
        .collect();

    let per_s = |secs: f64| n as f64 / secs;
    let t = Instant::now();
    let mut hits = 0usize;
    for w in &written {
        hits += usize::from(black_box(table.lookup(black_box(w))).is_some());
    }
    let lookup_str = per_s(t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut seg_hits = 0usize;
    for &s in &segs {
        seg_hits += usize::from(black_box(table.segment(black_box(s))).is_some());
    }
    let segment = per_s(t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut map_hits = 0usize;
    for &s in &segs {
        map_hits += usize::from(black_box(map.get(&black_box(s))).is_some());
    }
    let hashmap = per_s(t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut fixed_hits = 0usize;
    for f in &fixed {
        fixed_hits += usize::from(black_box(table.lookup(black_box(f))).is_some());
    }
    let fixed_line = per_s(t.elapsed().as_secs_f64());
    let agree = hits == seg_hits
        && seg_hits == map_hits
        && segs
            .iter()
            .all(|&s| table.segment(s).is_some() == map.contains_key(&s));
    anyhow::ensure!(fixed_hits > 0, "no fixed-line area code found in the table");

    Ok(Figures {
        source: table.source().to_string(),
        file_bytes,
        segments: table.segments(),
        runs: runs.len(),
        places: table.places(),
        area_codes: table.area_codes(),
        load_ms: median(loads),
        hashmap_build_ms: median(builds),
        // starts + ends (u32 each) + (place u16, carrier u8) padded to 4.
        table_bytes: runs.len() * 12,
        // hashbrown: key + value + 1 control byte per bucket, buckets a power of two >= 8/7 n.
        hashmap_bytes: map.capacity().next_power_of_two() * (4 + 4 + 1),
        lookups: n,
        hit_rate: hits as f64 / n as f64,
        lookup_str_per_s: lookup_str,
        segment_per_s: segment,
        hashmap_per_s: hashmap,
        fixed_line_per_s: fixed_line,
        agree,
    })
}

pub fn run(data_dir: &Path, a: &Args) -> anyhow::Result<()> {
    let f = measure(data_dir, a)?;
    if a.json {
        println!("{}", serde_json::to_string(&f)?);
        return Ok(());
    }
    let m = |x: f64| x / 1e6;
    println!("号段归属地 table: {}", f.source);
    println!(
        "  {} segments in {} runs, {} places, {} area codes; file {:.1} MB",
        f.segments,
        f.runs,
        f.places,
        f.area_codes,
        f.file_bytes as f64 / 1e6
    );
    println!("                         waihu-geo (runs)   baseline HashMap (per segment)");
    println!(
        "  load / build           {:>10.1} ms      {:>10.1} ms (from the loaded runs; reading excluded)",
        f.load_ms, f.hashmap_build_ms
    );
    println!(
        "  memory (approx.)       {:>10.2} MB      {:>10.2} MB",
        f.table_bytes as f64 / 1e6,
        f.hashmap_bytes as f64 / 1e6
    );
    println!(
        "  7-digit lookups        {:>10.1} M/s     {:>10.1} M/s  ({:.2}x)",
        m(f.segment_per_s),
        m(f.hashmap_per_s),
        f.segment_per_s / f.hashmap_per_s
    );
    println!(
        "  written numbers        {:>10.1} M/s     (Table::lookup: normalising +86/0086/0 included)",
        m(f.lookup_str_per_s)
    );
    println!(
        "  fixed lines (区号)      {:>10.1} M/s",
        m(f.fixed_line_per_s)
    );
    println!(
        "  {} probes, {:.1}% known; table and HashMap agree: {}",
        f.lookups,
        100.0 * f.hit_rate,
        f.agree
    );
    anyhow::ensure!(f.agree, "the table and the HashMap answered differently");
    Ok(())
}
