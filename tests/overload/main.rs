//! The real binary under overload, tried as an operator would: the
//! simulator as its own process at `--rate 0 --batch 100` (as fast as the
//! host reads), a private Redis, a subscriber that reads every message,
//! the host's memory sampled from `/proc` every 100 ms, and SIGTERM in the
//! middle of the stream.
//!
//! These tests saturate both cores, so they do not live in `tests/all`:
//! cargo runs one test binary after another, so nothing deadline-sensitive
//! runs beside them, and [`alone`] runs them one at a time. They link no
//! wasmtime (only the binary is used), so this second binary costs little
//! to build.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/process.rs"]
mod process;
#[path = "../common/redis_server.rs"]
#[allow(dead_code)] // shared with `tests/all`, which uses all of it
mod redis_server;

use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use process::Proc;
use redis_server::{free_port, RedisServer};

/// The host's stated peak RSS bound under overload, with the default
/// plugins (README, "Reliability").
const RSS_BOUND_MIB: f64 = 64.0;
/// How long the input runs at full speed.
const OVERLOAD_FOR: Duration = Duration::from_secs(20);
/// SIGTERM to exit: the 5 s shutdown budget, generously.
const EXIT_WITHIN: Duration = Duration::from_secs(15);

/// One test at a time: each one alone saturates the machine.
fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tickstock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickstock"));
    // The bound is stated for two cores: pin the runtime to two workers,
    // so a larger machine measures the same configuration.
    cmd.env_remove("MASSIVE_API_KEY")
        .env_remove("REDIS_URL")
        .env("TOKIO_WORKER_THREADS", "2")
        .env("RUST_LOG", "info")
        .env("TICKSTOCK_LOG_FORMAT", "json")
        .stdout(Stdio::null());
    cmd
}

/// `tickstock simulate` as its own process, with a key, on a free port.
struct Simulator {
    _proc: Proc,
    url: String,
}

const KEY: &str = "overload-key";

fn simulator(args: &[&str]) -> Simulator {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let proc = Proc(
        tickstock()
            .args(["simulate", "--listen", &listen, "--key", KEY, "--seed", "7"])
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the simulator did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Simulator {
        _proc: proc,
        url: format!("ws://{listen}/stocks"),
    }
}

/// A host role (`run` or `ingest`) as its own process; its JSON log goes
/// to a file.
struct Host {
    proc: Proc,
    log: tempfile::NamedTempFile,
}

fn host(role: &str, redis: &RedisServer, sim: &Simulator, prefix: &str, extra: &[&str]) -> Host {
    let log = tempfile::NamedTempFile::new().unwrap();
    let proc = Proc(
        tickstock()
            .args([role, "--redis-url", &redis.url(), "--massive-url", &sim.url])
            .args(["--channel-prefix", prefix, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("MASSIVE_API_KEY", KEY)
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    Host { proc, log }
}

impl Host {
    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// A `/proc/PID/status` field in MiB (see [`Proc::memory_mib`]).
    fn memory_mib(&self, field: &str) -> Option<f64> {
        self.proc.memory_mib(field)
    }

    /// Lets the input run for `how_long`, sampling RSS (printed); the host
    /// must keep running.
    fn run_for(&mut self, how_long: Duration) {
        let start = Instant::now();
        let mut samples = Vec::new();
        while start.elapsed() < how_long {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
                panic!("the host exited ({status}) under load:\n{log}");
            }
            samples.extend(self.memory_mib("VmRSS:"));
            std::thread::sleep(Duration::from_millis(100));
        }
        let every_2s: Vec<String> = samples
            .iter()
            .step_by(20)
            .map(|m| format!("{m:.0}"))
            .collect();
        eprintln!("RSS MiB every 2 s: {}", every_2s.join(" "));
    }

    /// SIGTERM; waits for the exit (at most [`EXIT_WITHIN`]). Returns the
    /// exit status, how long it took, and the peak RSS in MiB as last seen
    /// before the exit (the shutdown drains the queues, so it counts).
    fn terminate(&mut self) -> (ExitStatus, Duration, f64) {
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let mut peak = 0.0;
        loop {
            peak = self.memory_mib("VmHWM:").unwrap_or(peak);
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                return (status, sent.elapsed(), peak);
            }
            assert!(
                sent.elapsed() < EXIT_WITHIN,
                "no exit within {EXIT_WITHIN:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The fields of the last log line, `stopped`, where every frame and
    /// tick ended.
    fn final_counts(&self) -> Counts {
        let text = std::fs::read_to_string(self.log.path()).unwrap();
        let line = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .rfind(|l| l["fields"]["message"] == "stopped")
            .unwrap_or_else(|| panic!("no final counts in the log:\n{text}"));
        eprintln!("final counts: {}", line["fields"]);
        Counts(line["fields"].clone())
    }
}

struct Counts(serde_json::Value);

impl Counts {
    fn get(&self, name: &str) -> u64 {
        self.0[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {}", self.0))
    }

    /// Every frame received was normalized or dropped; every tick
    /// normalized was published, dropped, refused or left unconfirmed:
    /// the shutdown drained everything in time.
    fn assert_balanced(&self) {
        assert_eq!(self.get("frames_unprocessed"), 0, "the drain was cut off");
        assert_eq!(self.get("ticks_unpublished"), 0, "the flush was cut off");
        assert_eq!(
            self.get("frames_received"),
            self.get("frames_normalized") + self.get("frames_dropped"),
            "frames received = normalized + dropped"
        );
        assert_eq!(
            self.get("ticks_normalized"),
            self.get("ticks_published")
                + self.get("ticks_dropped")
                + self.get("ticks_refused")
                + self.get("ticks_unconfirmed"),
            "ticks normalized = published + dropped + refused + unconfirmed"
        );
    }
}

/// A private Redis that never cuts a subscriber off (the test's subscriber
/// may fall behind a host at full speed; it must still see everything).
fn redis() -> RedisServer {
    RedisServer::start_with(&["--client-output-buffer-limit", "pubsub 0 0 0"])
}

/// Reads every message on `PREFIX:*` on its own thread, counting ticks and
/// the ticks that arrived after a `session_stopped`.
struct Subscriber {
    ticks: Arc<AtomicU64>,
    ticks_after_stop: Arc<AtomicU64>,
    stopped_seen: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
}

impl Subscriber {
    fn start(redis: &RedisServer, prefix: &str) -> Subscriber {
        let sub = Subscriber {
            ticks: Arc::default(),
            ticks_after_stop: Arc::default(),
            stopped_seen: Arc::default(),
            quit: Arc::default(),
        };
        let (ticks, after, stopped, quit) = (
            sub.ticks.clone(),
            sub.ticks_after_stop.clone(),
            sub.stopped_seen.clone(),
            sub.quit.clone(),
        );
        let client = redis::Client::open(redis.url()).unwrap();
        let pattern = format!("{prefix}:*");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut conn = client.get_connection().unwrap();
            let mut pubsub = conn.as_pubsub();
            pubsub.psubscribe(&pattern).unwrap();
            pubsub
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            ready_tx.send(()).unwrap();
            while !quit.load(Ordering::Relaxed) {
                let Ok(msg) = pubsub.get_message() else {
                    continue;
                };
                let channel = msg.get_channel_name();
                if channel.ends_with(":market:ticks") {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    if stopped.load(Ordering::Relaxed) {
                        after.fetch_add(1, Ordering::Relaxed);
                    }
                } else if channel.ends_with(":session_stopped") {
                    stopped.store(true, Ordering::Relaxed);
                }
            }
        });
        ready_rx.recv().unwrap();
        sub
    }

    /// Waits until `n` ticks arrived (at full speed the subscriber may be
    /// behind by millions of messages: 30 s, plus a second per 20,000).
    fn wait_for_ticks(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30 + n / 20_000);
        while self.ticks.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the subscriber got {} of {n} ticks published",
                self.ticks.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Anything extra (a tick published twice) would be right behind.
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
    }
}

/// How the feed reader meets a full frame queue in [`overload`].
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    /// The default: it waits for room (up to 20 ms), so the simulator is
    /// slowed to the host's pace.
    Waits,
    /// `--queue-wait-ms 0`: it drops at once, so the host sheds load by
    /// dropping, at read speed.
    Drops,
}

/// Full speed into `role` with Redis: the peak RSS stays under the bound,
/// SIGTERM mid-stream exits in time (also while the reader waits for
/// room), and every frame and tick is accounted for, by the host's
/// counters and by Redis's own.
/// Also returns how long the exit took after SIGTERM.
fn overload(role: &str, reader: Reader) -> (Counts, Subscriber, Duration) {
    let redis = redis();
    let prefix = format!("overload-{role}");
    let sub = Subscriber::start(&redis, &prefix);
    let sim = simulator(&["--rate", "0", "--batch", "100"]);
    let extra: &[&str] = match reader {
        Reader::Waits => &[],
        Reader::Drops => &["--queue-wait-ms", "0"],
    };
    let mut host = host(role, &redis, &sim, &prefix, extra);
    host.run_for(OVERLOAD_FOR);
    let (status, took, peak) = host.terminate();
    eprintln!("{role}: exit {status} {took:?} after SIGTERM; peak RSS {peak:.1} MiB");
    assert!(status.success(), "{role} exited with {status}");
    let counts = host.final_counts();
    counts.assert_balanced();
    // The input did overload the host (else the bound proves nothing): it
    // shed load by dropping, with counters, or (waiting) held the sender back.
    let dropped = counts.get("frames_dropped") + counts.get("ticks_dropped");
    match reader {
        Reader::Drops => assert!(dropped > 0, "{role} kept up with the input: no overload"),
        Reader::Waits => assert!(
            counts.get("frames_waited") > 0,
            "{role} never waited for room: no overload"
        ),
    }
    assert!(
        peak < RSS_BOUND_MIB,
        "{role}: peak RSS {peak:.1} MiB, bound {RSS_BOUND_MIB} MiB"
    );
    // Redis executed the PUBLISH commands the host counts as published,
    // plus at most those it could not confirm: none sent twice.
    let published = counts.get("messages_published");
    let unconfirmed = counts.get("messages_unconfirmed");
    let executed = redis.publish_calls();
    assert!(
        (published..=published + unconfirmed).contains(&executed),
        "Redis executed {executed} PUBLISH, the host published {published} (+{unconfirmed} unconfirmed)"
    );
    let (ticks, unconfirmed) = (
        counts.get("ticks_published"),
        counts.get("ticks_unconfirmed"),
    );
    sub.wait_for_ticks(ticks);
    let received = sub.ticks.load(Ordering::Relaxed);
    assert!(
        (ticks..=ticks + unconfirmed).contains(&received),
        "the subscriber got {received} ticks, the host published {ticks}"
    );
    (counts, sub, took)
}

#[test]
fn run_at_full_speed_stays_bounded_and_stops_the_session_after_the_last_tick() {
    let _alone = alone();
    let (counts, sub, took) = overload("run", Reader::Drops);
    // Ticks the process role's subscription lost never arrive: waiting for
    // them held every exit for the whole 5 s budget.
    assert!(
        took < Duration::from_secs(4),
        "run took {took:?} to exit: the shutdown waited out its budget"
    );
    assert!(counts.get("ticks_published") > 0);
    assert!(
        sub.stopped_seen.load(Ordering::Relaxed),
        "no session_stopped"
    );
    assert_eq!(
        sub.ticks_after_stop.load(Ordering::Relaxed),
        0,
        "ticks published after session_stopped"
    );
}

#[test]
fn run_with_the_default_queue_wait_stays_bounded_and_exits_in_time() {
    let _alone = alone();
    let (counts, _sub, took) = overload("run", Reader::Waits);
    assert!(counts.get("ticks_published") > 0);
    assert!(
        took < Duration::from_secs(4),
        "run took {took:?} to exit: the shutdown waited out its budget"
    );
}

#[test]
fn ingest_at_full_speed_stays_bounded_and_accounts_for_every_tick() {
    let _alone = alone();
    let (counts, _sub, _) = overload("ingest", Reader::Waits);
    assert!(counts.get("ticks_published") > 0);
}

#[test]
fn fifty_mib_frames_are_refused_without_growth() {
    let _alone = alone();
    let redis = redis();
    let prefix = "overload-huge";
    let sim = simulator(&[
        "--rate",
        "5000",
        "--huge-frame-every",
        "20",
        "--huge-frame-mib",
        "50",
    ]);
    let mut host = host("ingest", &redis, &sim, prefix, &[]);
    host.run_for(Duration::from_secs(10));
    let (status, _, peak) = host.terminate();
    assert!(status.success(), "ingest exited with {status}");
    let counts = host.final_counts();
    counts.assert_balanced();
    // The feed goes on after each refusal (a reconnect), so several are
    // refused and ticks keep coming.
    assert!(
        counts.get("frames_refused_oversize") >= 3,
        "fewer than 3 frames refused"
    );
    assert!(counts.get("ticks_published") > 0, "the feed did not go on");
    assert!(
        peak < RSS_BOUND_MIB,
        "peak RSS {peak:.1} MiB with 50 MiB frames, bound {RSS_BOUND_MIB} MiB"
    );
}
