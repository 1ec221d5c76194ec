//! Unit tests of the team tier that need no Redis: configuration, URL handling, faults.

use super::*;

fn cfg(var: &str) -> TeamConfig {
    TeamConfig {
        redis_url_env: Some(var.to_owned()),
        ..TeamConfig::default()
    }
}

#[test]
fn no_variable_named_means_no_team_tier_and_a_missing_one_is_named() {
    assert!(matches!(
        Team::from_config(&TeamConfig::default()),
        Ok(None)
    ));
    let err = Team::from_config(&cfg("CODETIER_TEST_REDIS_URL_NEVER_SET")).unwrap_err();
    assert_eq!(
        err,
        TeamError::NoUrl("CODETIER_TEST_REDIS_URL_NEVER_SET".into())
    );
}

#[test]
fn a_bad_url_is_refused_without_showing_it() {
    let err = Team::connect("V", "http://:hunter2@example.com", &TeamConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("redis://"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_password_and_url_are_scrubbed_from_messages() {
    let team = Team::connect(
        "V",
        "redis://:hunter2@127.0.0.1:1/0",
        &TeamConfig::default(),
    )
    .unwrap();
    let said = team.scrub("failed at redis://:hunter2@127.0.0.1:1/0 with hunter2");
    assert!(!said.contains("hunter2"), "{said}");
    assert!(!format!("{team:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_redis_that_is_not_there_costs_one_timeout_then_nothing_and_is_told_once() {
    // Port 1 on loopback refuses at once; nothing listens there.
    let team = Team::connect("V", "redis://:pw@127.0.0.1:1/0", &TeamConfig::default()).unwrap();
    assert!(team.is_up());
    assert_eq!(team.get("k", Bound::Action).await, None);
    assert!(!team.is_up());
    assert_eq!(
        team.lock("k", Duration::from_secs(1)).await,
        Lock::Unavailable
    );
    assert_eq!(team.spent_today().await, None);
    assert_eq!(team.take_token("m", 1).await, None);
    assert_eq!(team.take_warning().as_deref(), Some(UNAVAILABLE));
    assert_eq!(team.take_warning(), None);
    assert!(team.day_stats().await.is_err());
}

#[tokio::test]
async fn a_redis_that_accepts_but_never_answers_is_given_up_on_within_the_action_s_bound() {
    // A listener that never accepts: the connection opens (the kernel's backlog), nothing
    // ever answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://:pw@{}/0", hung.local_addr().unwrap());
    let team = Team::connect("V", &url, &TeamConfig::default()).unwrap();
    let outcome = scoped(async {
        let first = team.get("k", Bound::Action).await;
        // The tier is off now: the next calls of the action do not wait at all.
        let second = team.lock("k", Duration::from_secs(1)).await;
        (first, second)
    })
    .await;
    assert_eq!(outcome, (None, Lock::Unavailable));
    assert!(!team.is_up());
    assert!(team.warning().is_some());
    assert_eq!(
        TeamConfig::default().timeout_ms,
        CALL_TIMEOUT.as_millis() as u64
    );
}
