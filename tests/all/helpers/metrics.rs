//! `/metrics` as a scraper reads it.

/// The sum of the samples of `name`.
pub fn sample(families: &prometheus_parse::Scrape, name: &str) -> f64 {
    sample_with(families, name, &[])
}

/// Scrapes `/metrics` at `addr` and parses it (failing on anything that is
/// not Prometheus text).
pub async fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
}

/// The sum of the samples of `name` whose labels include all of `labels`.
pub fn sample_with(
    families: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    families
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
