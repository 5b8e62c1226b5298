use crate::ctx::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {}

pub fn run(_ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {}
}
