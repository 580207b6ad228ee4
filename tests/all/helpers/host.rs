//! Hosts under test: the configuration, an in-process [`TestHost`] that
//! stops on drop, and the `tickstock` binary as a child process.

use std::ops::Deref;
use std::time::Duration;

use tickstock::config::Config;
use tickstock::roles::Host;
use tokio_util::sync::CancellationToken;

/// A configuration for in-process roles in tests.
pub fn config(
    prefix: &str,
    redis: Option<String>,
    symbols: usize,
    interval: Duration,
) -> tickstock::config::Config {
    let args = tickstock::cli::CommonArgs {
        redis_url: redis,
        channel_prefix: Some(prefix.to_string()),
        health_interval: Some(interval.as_secs_f64()),
        symbols: Some(symbols_list(symbols)),
        listen: Some("127.0.0.1:0".into()),
        cache_dir: Some(std::env::temp_dir().join("tickstock-test-cache")),
        ..Default::default()
    };
    tickstock::config::Config::resolve_with(&args, None).unwrap()
}

/// Ticker-like symbol names.
pub fn symbols_list(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SYM{i}")).collect()
}

/// The tickstock binary built for these tests.
pub fn tickstock_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tickstock"));
    cmd.env_remove("MASSIVE_API_KEY")
        .env_remove("REDIS_URL")
        .env_remove("TICKSTOCK_FLEET_KEY")
        .env_remove("TICKSTOCK_ADMIN_TOKEN")
        .env("RUST_LOG", "info");
    cmd
}

/// All roles in this process, stopped (cancelled) when dropped; [`stop`]
/// also waits for an orderly end and checks it.
///
/// [`stop`]: TestHost::stop
pub struct TestHost {
    host: Option<Host>,
    cancel: CancellationToken,
}

impl TestHost {
    /// Starts a host with `config`.
    pub async fn start(config: &Config) -> TestHost {
        let cancel = CancellationToken::new();
        let host = Host::start(config, cancel.clone()).await.unwrap();
        TestHost {
            host: Some(host),
            cancel,
        }
    }

    /// Waits (at most `timeout`) for the host to stop by itself, and
    /// returns why.
    pub async fn stopped_by_itself(mut self, timeout: Duration) -> anyhow::Result<()> {
        let host = self.host.take().expect("the host was stopped");
        tokio::time::timeout(timeout, host.wait())
            .await
            .expect("the host did not stop by itself")
    }

    /// Cancels the host and waits until it stopped cleanly.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(host) = self.host.take() {
            tokio::time::timeout(Duration::from_secs(30), host.wait())
                .await
                .expect("the host did not stop within 30 s")
                .unwrap();
        }
    }
}

impl Deref for TestHost {
    type Target = Host;
    fn deref(&self) -> &Host {
        self.host.as_ref().expect("the host was stopped")
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A child process, killed (and reaped) when dropped.
pub struct Child(pub std::process::Child);

impl Child {
    /// Starts `cmd`.
    pub fn spawn(mut cmd: std::process::Command) -> Child {
        Child(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }

    /// Sends a signal (`-TERM`, `-KILL`, ...).
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tickstock ROLE` as its own process against `redis` under `prefix`
/// (five symbols), with `extra` arguments; its output is discarded.
pub fn role(role: &str, redis: &str, prefix: &str, extra: &[&str]) -> Child {
    role_with(role, redis, prefix, extra, &[], std::process::Stdio::null())
}

/// [`role`] with `env` added to its environment and its stderr (the log)
/// sent to `stderr`.
pub fn role_with(
    role: &str,
    redis: &str,
    prefix: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> Child {
    let mut cmd = tickstock_bin();
    cmd.args([
        role,
        "--redis-url",
        redis,
        "--channel-prefix",
        prefix,
        "--symbols",
        "AAPL,MSFT,NVDA,AMZN,GOOG",
    ])
    .args(extra)
    .envs(env.iter().copied())
    .stdout(std::process::Stdio::null())
    .stderr(stderr);
    Child::spawn(cmd)
}
