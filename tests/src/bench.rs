//! The set-up most protocol tests share: a fake provider on its own runtime, and the real
//! `codetier` binary over stdio talking to it with a given key.

use crate::client::{Builder, TestServer};
use crate::fake::{FakeProvider, Script};

/// A fake provider and a server pointed at it. Fields drop in order: the server (shut down and
/// checked), the fake, then the runtime its tasks run on.
pub struct Bench {
    pub server: TestServer,
    pub fake: FakeProvider,
    _rt: tokio::runtime::Runtime,
}

impl Bench {
    /// Starts the fake with `script`, then the server with `key` in `GLOBAL_API_KEY` and the
    /// fake's URL in `CODETIER_BASE_URL`, as `configure` adjusts its builder, initialized.
    pub fn start(script: Script, key: &str, configure: impl FnOnce(Builder) -> Builder) -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let fake = rt
            .block_on(FakeProvider::start(script))
            .expect("the fake provider starts");
        let builder = TestServer::builder()
            .env("CODETIER_BASE_URL", &fake.base_url())
            .env("GLOBAL_API_KEY", key);
        let server = configure(builder).start();
        Bench {
            server,
            fake,
            _rt: rt,
        }
    }
}
