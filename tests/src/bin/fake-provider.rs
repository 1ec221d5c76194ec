//! The fake provider as a standalone binary: prints its base URL, then serves until killed.

use std::net::SocketAddr;

use anyhow::Context;
use codetier_tests::fake::{FakeProvider, Script};

const USAGE: &str = "usage: fake-provider [--port PORT] [--script FILE.json]\n\
    Serves an OpenAI-compatible API on 127.0.0.1 and prints its base URL.\n\
    POST a new script as JSON to <base URL without /v1>/_fake/script at any time.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut port = 0u16;
    let mut script = Script::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().context("--port needs a number")?;
                port = value
                    .parse()
                    .with_context(|| format!("--port {value}: not a port number"))?;
            }
            "--script" => {
                let path = args.next().context("--script needs a file")?;
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
                script = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let fake = FakeProvider::start_on(SocketAddr::from(([127, 0, 0, 1], port)), script).await?;
    println!("{}", fake.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
