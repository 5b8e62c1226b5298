//! `waihu geo`: the 号段归属地 table (waihu-geo) — what is installed, and
//! where numbers belong.
use anyhow::Context;

use crate::ctx::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 归属地查询: province/city, area code and carrier of each number (mobiles by
    /// their 7-digit segment, fixed lines by area code).
    Lookup {
        #[arg(required = true)]
        numbers: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// 号段库信息: where the installed table is, its source and size. Update it with
    /// `WAIHU_GEO_PHONE=latest bash scripts/deps/geo.sh`.
    Info {
        #[arg(long)]
        json: bool,
    },
}

fn table(ctx: &Ctx) -> anyhow::Result<waihu_geo::Table> {
    let path = waihu_geo::default_path(ctx.home());
    waihu_geo::read_file(&path)?.with_context(|| {
        format!(
            "no 号段归属地 table at {} / 未安装号段库: run `bash scripts/deps/geo.sh`",
            path.display()
        )
    })
}

pub fn run(ctx: &Ctx, c: Cmd) -> anyhow::Result<()> {
    match c {
        Cmd::Lookup { numbers, json } => {
            let t = table(ctx)?;
            for n in &numbers {
                let l = t.lookup(n);
                if json {
                    crate::ctx::print_json(&serde_json::json!({
                        "number": n,
                        "found": l.is_some(),
                        "region": l.map(|l| l.region()),
                        "province": l.map(|l| l.province),
                        "city": l.and_then(|l| l.city),
                        "area_code": l.map(|l| l.area_code),
                        "carrier": l.and_then(|l| l.carrier).map(|c| c.zh()),
                        "carrier_en": l.and_then(|l| l.carrier).map(|c| c.en()),
                    }))?;
                } else {
                    match l {
                        Some(l) => println!("{n}\t{l}"),
                        None => println!("{n}\t未知 / unknown"),
                    }
                }
            }
            Ok(())
        }
        Cmd::Info { json } => {
            let path = waihu_geo::default_path(ctx.home());
            let t = table(ctx)?;
            if json {
                crate::ctx::print_json(&serde_json::json!({
                    "path": path, "source": t.source(), "segments": t.segments(),
                    "places": t.places(), "area_codes": t.area_codes(),
                }))?;
            } else {
                println!("{}", path.display());
                println!("  来源 / source: {}", t.source());
                println!(
                    "  {} 个号段 / mobile segments, {} 个城市 / places, {} 个区号 / area codes",
                    t.segments(),
                    t.places(),
                    t.area_codes()
                );
            }
            Ok(())
        }
    }
}
