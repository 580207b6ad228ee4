//! The fleet: one install, rollback or shadow through any admin API reaches
//! every instance (`ingest`, `process` and `dashboard` as separate
//! processes sharing a private Redis); forged, replayed or tampered
//! commands change nothing and are counted; an instance without the fleet
//! key ignores the control channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tickstock::bus::Channels;
use tickstock::fleet::{Action, Command, FleetKey, FleetStore, Issuer, Roster, RosterReader};
use tickstock::plugins::PluginKind;
use tickstock::secret::Secret;

use crate::helpers::{self, guests, role_with, wait_until, Child, RedisServer, TOKEN};

const SECS: Duration = Duration::from_secs(60);
const KEY: &str = "fleet-key-for-the-tests-0123456789";

/// The environment of a fleet member.
const WITH_KEY: [(&str, &str); 1] = [("TICKSTOCK_FLEET_KEY", KEY)];

fn key(k: &str) -> FleetKey {
    FleetKey::new(Secret::new(k)).unwrap()
}

fn store(redis: &RedisServer, ch: &Channels) -> Arc<FleetStore> {
    Arc::new(FleetStore::new(&Secret::new(redis.url()), ch.prefix()).unwrap())
}

/// An issuer in the test process (what any admin API with the key runs).
fn issuer(redis: &RedisServer, ch: &Channels) -> Issuer {
    Issuer::new(
        key(KEY),
        store(redis, ch),
        helpers::engine(),
        ch.control(),
        "the-test".into(),
    )
}

/// `role` as a fleet member (with the key).
fn member(role_name: &str, redis: &RedisServer, ch: &Channels, extra: &[&str]) -> Child {
    let null = std::process::Stdio::null();
    role_with(role_name, &redis.url(), ch.prefix(), extra, &WITH_KEY, null)
}

/// A standalone dashboard with the admin token and the fleet key; its
/// address once it answers.
async fn dashboard(redis: &RedisServer, ch: &Channels) -> (Child, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", helpers::free_port())
        .parse()
        .unwrap();
    let listen = addr.to_string();
    let env = [WITH_KEY[0], ("TICKSTOCK_ADMIN_TOKEN", TOKEN)];
    let child = role_with(
        "dashboard",
        &redis.url(),
        ch.prefix(),
        &["--listen", &listen],
        &env,
        std::process::Stdio::null(),
    );
    wait_until_answers(addr).await;
    (child, addr)
}

async fn wait_until_answers(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + SECS;
    while reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{addr} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the roster (read in this process with `reader`) until `ok`.
async fn roster_until(reader: &RosterReader, what: &str, ok: impl Fn(&Roster) -> bool) -> Roster {
    let deadline = std::time::Instant::now() + SECS;
    loop {
        if let Ok(roster) = reader.read().await {
            if ok(&roster) {
                return roster;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for: {what}; roster: {}",
                serde_json::to_string_pretty(&roster).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The roles of the live instances, sorted.
fn roles(roster: &Roster) -> Vec<&str> {
    roster
        .instances
        .iter()
        .map(|m| m.heartbeat.role.as_str())
        .collect()
}

/// The id of the session started last.
fn last_session(consumer: &helpers::Consumer, ch: &Channels) -> String {
    let started = consumer.on(&ch.session_started());
    started.last().unwrap().json["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The health object of a health event of `session`.
fn of_session<'a>(h: &'a Value, session: &str) -> Option<&'a Value> {
    (h["health"]["session_id"] == session).then_some(&h["health"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_through_the_dashboard_reaches_both_roles_a_later_process_adopts_it_and_a_rollback_reverts_both(
) {
    let (redis, ch, consumer) = helpers::redis_and_consumer("fleet-install").await;
    let _ingest = member("ingest", &redis, &ch, &[]);
    let _process = member("process", &redis, &ch, &["--health-interval", "0.5"]);
    let (_dashboard, addr) = dashboard(&redis, &ch).await;
    let reader = RosterReader::new(store(&redis, &ch), Some(key(KEY)));
    roster_until(&reader, "three instances", |r| {
        roles(r) == ["dashboard", "ingest", "process"]
    })
    .await;
    wait_until("ticks and health", SECS, || {
        consumer.count(&ch.ticks()) > 20 && consumer.count(&ch.health()) >= 2
    })
    .await;
    let first_session = last_session(&consumer, &ch);

    // One upload per kind to the dashboard, which runs neither kind.
    let (code, reply) = helpers::post_to(
        addr,
        "/admin/plugins/normalizer",
        Some(TOKEN),
        guests::normalizer_next(),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    assert_eq!(reply["fleet"]["action"], "install");
    assert_eq!(reply["fleet"]["version"], "1.1.0");
    consumer
        .wait_for_new(&ch.ticks(), "the ingest role's new field", SECS, |t| {
            t.get("sequence").is_some()
        })
        .await;
    let (code, reply) = helpers::post_to(
        addr,
        "/admin/plugins/health",
        Some(TOKEN),
        guests::health_next(),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    consumer
        .wait_for_new(&ch.health(), "the process role's new metric", SECS, |h| {
            of_session(h, &first_session).is_some_and(|h| h.get("symbols_seen_total").is_some())
        })
        .await;

    // Each role reports its outcome, with who it is; the schema holds.
    let schema = helpers::schema("plugin_event.json");
    let applied = |role: &str, kind: &str| {
        consumer
            .on(&ch.plugins())
            .into_iter()
            .filter(|e| e.json["type"] == "fleet_applied")
            .find(|e| e.json["role"] == role && e.json["kind"] == kind)
            .map(|e| e.json)
    };
    wait_until("both outcomes reported", SECS, || {
        applied("ingest", "normalizer").is_some() && applied("process", "health").is_some()
    })
    .await;
    for event in [
        applied("ingest", "normalizer").unwrap(),
        applied("process", "health").unwrap(),
    ] {
        helpers::assert_schema(&schema, &event);
        assert_eq!(event["outcome"], "applied", "{event}");
        assert_eq!(event["active_sha256"], event["sha256"], "{event}");
        assert!(!event["host"].as_str().unwrap().is_empty());
    }
    assert!(
        applied("dashboard", "normalizer").is_none(),
        "the dashboard runs no plugin"
    );

    // Every instance shows, each running the desired versions.
    let roster = roster_until(&reader, "the fleet converged", |r| {
        r.converged && r.desired.len() == 2
    })
    .await;
    assert_eq!(roles(&roster), ["dashboard", "ingest", "process"]);
    let listed = get(addr, "/admin/plugins").await;
    assert_eq!(listed["fleet"]["converged"], true, "{listed}");
    assert_eq!(listed["fleet"]["instances"].as_array().unwrap().len(), 3);
    let cli = helpers::tickstock_bin()
        .args(["plugins", "--admin-url", &format!("http://{addr}"), "list"])
        .env("TICKSTOCK_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{out}");
    for m in &roster.instances {
        let line = out
            .lines()
            .find(|l| l.starts_with(&m.heartbeat.instance_id))
            .unwrap_or_else(|| panic!("{} is not listed:\n{out}", m.heartbeat.role));
        assert!(line.contains(&m.heartbeat.role), "{line}");
        assert!(line.trim_end().ends_with("yes"), "{line}");
    }
    assert!(out.contains("1.1.0"), "{out}");

    // A process started afterwards takes the desired health version.
    let _late = member("process", &redis, &ch, &["--health-interval", "0.5"]);
    wait_until("the late session started", SECS, || {
        last_session(&consumer, &ch) != first_session
    })
    .await;
    let late_session = last_session(&consumer, &ch);
    consumer
        .wait_for_new(
            &ch.health(),
            "the late process on the new metric",
            SECS,
            |h| of_session(h, &late_session).is_some_and(|h| h.get("symbols_seen_total").is_some()),
        )
        .await;
    let roster = roster_until(&reader, "four instances, converged", |r| {
        r.instances.len() == 4 && r.converged
    })
    .await;
    assert_eq!(
        roles(&roster),
        ["dashboard", "ingest", "process", "process"]
    );

    // A rollback of each kind reverts every instance.
    for kind in ["normalizer", "health"] {
        let path = format!("/admin/plugins/{kind}/rollback");
        let (code, reply) = helpers::post_to(addr, &path, Some(TOKEN), Vec::new()).await;
        assert_eq!(code, 202, "{reply}");
        assert_eq!(reply["fleet"]["action"], "rollback");
    }
    consumer
        .wait_for_new(&ch.ticks(), "ticks without the new field", SECS, |t| {
            t.get("sequence").is_none()
        })
        .await;
    for session in [&first_session, &late_session] {
        consumer
            .wait_for_new(&ch.health(), "health without the new metric", SECS, |h| {
                of_session(h, session).is_some_and(|h| h.get("symbols_seen_total").is_none())
            })
            .await;
    }
    let roster = roster_until(&reader, "converged after the rollbacks", |r| {
        r.converged && r.desired.values().all(|d| d.action == Action::Rollback)
    })
    .await;
    assert_eq!(roster.instances.len(), 4);
    // Nothing left to roll back past the built-in version.
    let (code, _) = helpers::post_to(
        addr,
        "/admin/plugins/health/rollback",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(code, 409);
}

fn command(generation: u64, sha256: &str) -> Command {
    Command {
        kind: PluginKind::Normalizer,
        action: Action::Install,
        sha256: sha256.to_string(),
        generation,
        issued_at: "2026-12-05T10:00:00.000Z".into(),
        issued_by: "an-attacker".into(),
        for_secs: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_or_tampered_commands_change_nothing_and_are_counted() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("fleet-forged").await;
    let _ingest = member("ingest", &redis, &ch, &[]);
    let reader = RosterReader::new(store(&redis, &ch), Some(key(KEY)));
    roster_until(&reader, "the ingest instance", |r| roles(r) == ["ingest"]).await;
    let fleet = issuer(&redis, &ch);
    let next = guests::normalizer_next();
    let next_sha = tickstock::manager::sha256_hex(&next);

    // A real install and rollback: generations 1 and 2.
    fleet
        .install(PluginKind::Normalizer, next.clone())
        .await
        .unwrap();
    consumer
        .wait_for_new(&ch.ticks(), "the new field", SECS, |t| {
            t.get("sequence").is_some()
        })
        .await;
    let install_announcement = consumer
        .on(&ch.control())
        .first()
        .map(|m| m.json.to_string())
        .unwrap();
    fleet.rollback(PluginKind::Normalizer).await.unwrap();
    consumer
        .wait_for_new(&ch.ticks(), "the field gone again", SECS, |t| {
            t.get("sequence").is_none()
        })
        .await;
    roster_until(&reader, "generation 2 taken", |r| {
        r.instances[0]
            .heartbeat
            .generations
            .get(&PluginKind::Normalizer)
            == Some(&2)
    })
    .await;
    let after_rollback = consumer.count(&ch.ticks());

    // Each of these would bring the new field back if it were taken.
    let raw = redis::Client::open(redis.url()).unwrap();
    let mut conn = raw.get_multiplexed_async_connection().await.unwrap();
    let publish = async |conn: &mut redis::aio::MultiplexedConnection, text: String| {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(ch.control())
            .arg(text)
            .query_async(conn)
            .await
            .unwrap();
    };
    // No signature.
    let unsigned =
        serde_json::json!({"command": serde_json::to_string(&command(3, &next_sha)).unwrap()});
    publish(&mut conn, unsigned.to_string()).await;
    // Signed with another key.
    let forged = key("not-the-fleet-key-0123456789").sign(&command(3, &next_sha));
    publish(&mut conn, forged).await;
    // The real, correctly signed install announcement, replayed.
    publish(&mut conn, install_announcement).await;
    // A correctly signed command whose stored bytes are not the component
    // it names (the blob was swapped in Redis).
    let _: () = redis::cmd("SET")
        .arg(format!("{}:fleet:blob:{next_sha}", ch.prefix()))
        .arg(guests::normalizer_trap())
        .query_async(&mut conn)
        .await
        .unwrap();
    publish(&mut conn, key(KEY).sign(&command(3, &next_sha))).await;
    // A forged desired-state record (read at the next reconcile).
    let _: () = redis::cmd("SET")
        .arg(format!("{}:fleet:desired:normalizer", ch.prefix()))
        .arg(key("not-the-fleet-key-0123456789").sign(&command(9, &next_sha)))
        .query_async(&mut conn)
        .await
        .unwrap();

    let roster = roster_until(&reader, "every attempt counted", |r| {
        let rejected = &r.instances[0].heartbeat.rejected;
        let n = |label: &str| rejected.get(label).copied().unwrap_or(0);
        n("unsigned") == 1
            && n("bad_signature") == 2
            && n("replayed") == 1
            && n("hash_mismatch") == 1
    })
    .await;
    let beat = &roster.instances[0].heartbeat;
    let refused = beat.refused.last().unwrap();
    assert_eq!(refused.generation, 3, "{refused:?}");
    assert!(refused.reason.contains("hashes to"), "{refused:?}");
    assert_eq!(beat.generations[&PluginKind::Normalizer], 3);
    // Still the built-in normalizer, and no tick since carried the field.
    let builtin = tickstock::manager::sha256_hex(tickstock::plugins::embedded::NORMALIZER);
    assert_eq!(beat.active[&PluginKind::Normalizer].sha256, builtin);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ticks = consumer.on(&ch.ticks());
    assert!(ticks.len() > after_rollback + 10, "ticks stopped flowing");
    assert!(
        ticks[after_rollback..]
            .iter()
            .all(|t| t.json.get("sequence").is_none()),
        "a rejected command changed the normalizer"
    );
    let refusals: Vec<_> = consumer
        .on(&ch.plugins())
        .into_iter()
        .filter(|e| e.json["type"] == "fleet_applied" && e.json["outcome"] == "refused")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_the_fleet_key_ignores_the_control_channel() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("fleet-keyless").await;
    let _keyed = member("process", &redis, &ch, &["--health-interval", "0.5"]);
    wait_until("the keyed session", SECS, || {
        consumer.count(&ch.session_started()) == 1
    })
    .await;
    let keyed_session = last_session(&consumer, &ch);
    let log = tempfile::NamedTempFile::new().unwrap();
    let _keyless = role_with(
        "process",
        &redis.url(),
        ch.prefix(),
        &["--health-interval", "0.5"],
        &[],
        log.reopen().unwrap().into(),
    );
    wait_until("the keyless session", SECS, || {
        consumer.count(&ch.session_started()) == 2
    })
    .await;
    let keyless_session = last_session(&consumer, &ch);
    let reader = RosterReader::new(store(&redis, &ch), Some(key(KEY)));
    roster_until(&reader, "both instances", |r| r.instances.len() == 2).await;

    issuer(&redis, &ch)
        .install(PluginKind::Health, guests::health_next())
        .await
        .unwrap();
    consumer
        .wait_for_new(
            &ch.health(),
            "the keyed process on the new metric",
            SECS,
            |h| {
                of_session(h, &keyed_session).is_some_and(|h| h.get("symbols_seen_total").is_some())
            },
        )
        .await;
    // Two more intervals of the keyless one: still the built-in version.
    let seen = consumer.count(&ch.health());
    wait_until("two more keyless health events", SECS, || {
        consumer.on(&ch.health())[seen..]
            .iter()
            .filter(|h| of_session(&h.json, &keyless_session).is_some())
            .count()
            >= 2
    })
    .await;
    assert!(
        consumer
            .on(&ch.health())
            .iter()
            .filter_map(|h| of_session(&h.json, &keyless_session))
            .all(|h| h.get("symbols_seen_total").is_none()),
        "the instance without the key took the command"
    );
    // The roster shows the keyed one on the desired version and the
    // keyless one not (heartbeats lag a swap by up to two seconds).
    let matches = |r: &Roster, keyed: bool| {
        r.instances
            .iter()
            .find(|m| m.heartbeat.fleet_key == keyed)
            .map(|m| m.matches[&PluginKind::Health])
    };
    let roster = roster_until(&reader, "the keyless one diverges", |r| {
        matches(r, true) == Some(true) && matches(r, false) == Some(false)
    })
    .await;
    assert!(!roster.converged);
    let log = std::fs::read_to_string(log.path()).unwrap();
    assert_eq!(
        log.matches("ignores the control channel").count(),
        1,
        "{log}"
    );
    assert!(!log.contains(KEY));
    // Nothing of the keyed one's was refused or rejected.
    let keyed = roster
        .instances
        .iter()
        .find(|m| m.heartbeat.fleet_key)
        .unwrap();
    assert!(
        keyed.heartbeat.rejected.is_empty(),
        "{:?}",
        keyed.heartbeat.rejected
    );
    assert!(keyed.matches[&PluginKind::Health]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shadow_is_promoted_and_a_version_an_instance_rolls_back_is_reported_refused() {
    let (redis, ch, consumer) = helpers::redis_and_consumer("fleet-shadow").await;
    let symbols = &helpers::SYMBOLS[..11]; // with TRAPME
    let sim = helpers::recording_simulator(300.0, symbols).await;
    let mut config = helpers::sim_config(&sim, ch.prefix(), Some(redis.url()), symbols);
    config.fleet_key = Some(Secret::new(KEY));
    let host = helpers::TestHost::start(&config).await;
    let reader = RosterReader::new(store(&redis, &ch), Some(key(KEY)));
    roster_until(&reader, "the run instance", |r| roles(r) == ["run"]).await;

    // The admin API of `run` with the key issues to the fleet (202).
    let (code, reply) = helpers::post(
        &host,
        "/admin/plugins/normalizer/shadow",
        Some(TOKEN),
        guests::normalizer_next(),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    assert_eq!(reply["fleet"]["action"], "shadow");
    consumer
        .wait_for_new(&ch.plugins(), "the instance's shadow report", SECS, |e| {
            e["type"] == "plugin_shadow" && e["report"]["fields"]["added"].get("sequence").is_some()
        })
        .await;
    assert!(
        consumer
            .on(&ch.ticks())
            .iter()
            .all(|t| t.json.get("sequence").is_none()),
        "a shadow's output reached Redis"
    );
    let (code, _) = helpers::post(
        &host,
        "/admin/plugins/normalizer/shadow",
        Some(TOKEN),
        guests::normalizer_next(),
    )
    .await;
    assert_eq!(code, 409, "one fleet shadow per kind");
    let (code, reply) = helpers::post(
        &host,
        "/admin/plugins/normalizer/shadow/promote",
        Some(TOKEN),
        Vec::new(),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    consumer
        .wait_for_new(&ch.ticks(), "the promoted version live", SECS, |t| {
            t.get("sequence").is_some()
        })
        .await;
    let promoted = consumer
        .on(&ch.plugins())
        .into_iter()
        .find(|e| e.json["type"] == "fleet_applied" && e.json["action"] == "promote")
        .map(|e| e.json);
    assert_eq!(
        promoted.as_ref().unwrap()["outcome"],
        "applied",
        "{promoted:?}"
    );

    // A version that traps on live ticks: the instance installs it, rolls
    // it back by itself, and reports the fleet version refused.
    let (code, reply) = helpers::post(
        &host,
        "/admin/plugins/normalizer",
        Some(TOKEN),
        guests::normalizer_trap(),
    )
    .await;
    assert_eq!(code, 202, "{reply}");
    let generation = reply["fleet"]["generation"].as_u64().unwrap();
    consumer
        .wait_for_new(&ch.plugins(), "the refusal after the rollback", SECS, |e| {
            e["type"] == "fleet_applied"
                && e["outcome"] == "refused"
                && e["generation"] == generation
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("rolled back automatically"))
        })
        .await;
    let roster = roster_until(&reader, "the divergence shown", |r| {
        !r.converged
            && r.instances[0]
                .heartbeat
                .refused
                .iter()
                .any(|c| c.generation == generation)
    })
    .await;
    // It keeps the promoted version and does not take that generation again.
    let next_sha = tickstock::manager::sha256_hex(&guests::normalizer_next());
    assert_eq!(
        roster.instances[0].heartbeat.active[&PluginKind::Normalizer].sha256,
        next_sha
    );
    tokio::time::sleep(tickstock::fleet::agent::RECONCILE_EVERY + Duration::from_secs(1)).await;
    assert_eq!(
        helpers::active_version(&host, PluginKind::Normalizer),
        "1.1.0",
        "the refused generation was taken again"
    );
    host.stop().await;
}
