//! The feed side: simulators, a feed client with its pipeline, and the
//! comparison of what was sent with what arrived.

use std::time::Duration;

use super::plugins::{engine, normalizer};

/// `n` symbols named `S0`, `S1`, ...
pub fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i}")).collect()
}

/// A simulator on a free loopback port.
pub async fn simulator(
    config: tickstock::simulator::SimulatorConfig,
) -> tickstock::simulator::Simulator {
    tickstock::simulator::Simulator::start("127.0.0.1:0", config)
        .await
        .unwrap()
}

/// Feed client timing for tests: fast reconnects.
pub fn fast_timing() -> tickstock::feed::Timing {
    let mut t = tickstock::feed::Timing::default();
    t.backoff.initial = Duration::from_millis(50);
    t.backoff.max = Duration::from_millis(500);
    t.backoff.jitter = 0.0;
    t.backoff.max_connections_floor = Duration::from_secs(3);
    t.handshake_timeout = Duration::from_secs(5);
    t
}

/// A feed client and its pipeline, running against some server.
pub struct Feed {
    pub stats: std::sync::Arc<tickstock::feed::FeedStats>,
    pub pipeline: std::sync::Arc<tickstock::pipeline::PipelineStats>,
    pub out: tokio::sync::mpsc::Receiver<tickstock::pipeline::Output>,
    pub cancel: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), tickstock::feed::FeedError>>,
}

/// Starts a feed client (embedded normalizer) for `topics` on `url`.
pub fn feed(
    url: &str,
    key: &str,
    topics: Vec<String>,
    timing: tickstock::feed::Timing,
    queue: usize,
    out_capacity: usize,
) -> Feed {
    let wait = tickstock::feed::DEFAULT_QUEUE_WAIT;
    feed_waiting(url, key, topics, timing, queue, out_capacity, wait)
}

/// [`feed`], whose reader waits up to `queue_wait` for room in a full queue.
pub fn feed_waiting(
    url: &str,
    key: &str,
    topics: Vec<String>,
    timing: tickstock::feed::Timing,
    queue: usize,
    out_capacity: usize,
    queue_wait: Duration,
) -> Feed {
    use tickstock::feed::{FeedClient, FeedStats};
    let engine = engine();
    let plugin = normalizer(&engine);
    let (out_tx, out) = tokio::sync::mpsc::channel(out_capacity);
    let stats = std::sync::Arc::new(FeedStats::default());
    let pipeline = std::sync::Arc::new(tickstock::pipeline::PipelineStats::default());
    let (_thread, frames) = tickstock::pipeline::spawn(
        plugin,
        queue,
        Default::default(),
        out_tx,
        pipeline.clone(),
        Default::default(),
    )
    .unwrap();
    let client = FeedClient::new(
        url,
        tickstock::secret::Secret::new(key),
        topics,
        frames,
        stats.clone(),
    )
    .with_timing(timing)
    .with_queue_wait(queue_wait);
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));
    Feed {
        stats,
        pipeline,
        out,
        cancel,
        task,
    }
}

impl Feed {
    /// Drains ticks until `n` arrived or `timeout` passed (the caller then
    /// compares what arrived with what was sent).
    pub async fn drain_up_to(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Vec<tickstock::plugins::Tick> {
        let mut ticks = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        while ticks.len() < n && std::time::Instant::now() < deadline {
            while let Ok(out) = self.out.try_recv() {
                if let tickstock::pipeline::Output::Ticks(batch) = out {
                    ticks.extend(batch.ticks.into_iter().map(|t| t.tick));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ticks
    }

    /// Collects ticks until `n` arrived (or panics after `timeout`).
    pub async fn collect(&mut self, n: usize, timeout: Duration) -> Vec<tickstock::plugins::Tick> {
        let mut ticks = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while ticks.len() < n {
            match tokio::time::timeout_at(deadline, self.out.recv()).await {
                Ok(Some(tickstock::pipeline::Output::Ticks(batch))) => {
                    ticks.extend(batch.ticks.into_iter().map(|t| t.tick))
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("pipeline closed after {} ticks", ticks.len()),
                Err(_) => panic!("only {} of {n} ticks within {timeout:?}", ticks.len()),
            }
        }
        ticks
    }
}

/// Asserts that `received` is exactly `sent`, in order.
pub fn assert_same_trades(
    sent: &[tickstock::simulator::SentTrade],
    received: &[tickstock::plugins::Tick],
) {
    assert_eq!(
        sent.len(),
        received.len(),
        "sent {} trades, received {}",
        sent.len(),
        received.len()
    );
    for (i, (s, r)) in sent.iter().zip(received).enumerate() {
        assert_eq!(
            (s.symbol.as_str(), s.seq, s.price, s.size, s.timestamp),
            (
                r.symbol.as_str(),
                r.sequence.unwrap_or(0),
                r.price,
                r.size,
                r.timestamp_ms
            ),
            "trade {i} differs"
        );
    }
}
