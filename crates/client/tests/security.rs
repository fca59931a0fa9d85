//! The client's SASL against the broker's server side (a Runnel broker started in this process
//! with a SASL_PLAINTEXT listener): PLAIN and SCRAM-SHA-256/512 logins, SCRAM users made with
//! the admin client's salted passwords, a refused password failing at once (not retried), and
//! KIP-368 re-authentication on the same connection before the session expires. TLS is driven
//! by tests/test_cli_security.py (certificates come from the openssl CLI there).

use std::time::{Duration, Instant};

use runnel_client::acls::{AclBinding, AclFilter};
use runnel_client::admin::NewTopic;
use runnel_client::conn::Connection;
use runnel_client::kafka_protocol::messages::MetadataRequest;
use runnel_client::sasl::scram::ScramMechanism;
use runnel_client::{Admin, ClientConfig, Error, Producer, ProducerConfig, ProducerRecord};

const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-pw" user_admin="admin-pw" user_alice="alice-pw";"#;

async fn sasl_broker(
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> (runnel_broker::BrokerHandle, String) {
    let mut o: Vec<(String, String)> = [
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", dir.join("data").display().to_string()),
        ("node.id", "1".into()),
        ("offsets.topic.num.partitions", "2".into()),
        (
            "sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
        ),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            PLAIN_JAAS.into(),
        ),
        ("connection.failed.authentication.delay.ms", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    o.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let cfg = runnel_config::BrokerConfig::load(None, &[], &o)
        .unwrap()
        .config;
    let handle = runnel_broker::Broker::start(cfg).await.unwrap();
    let addr = handle.bound[0].1.to_string();
    (handle, addr)
}

fn config(addr: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new(addr);
    c.set("security.protocol", "SASL_PLAINTEXT").unwrap();
    c.set("sasl.mechanism", mechanism).unwrap();
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    c.set(
        "sasl.jaas.config",
        &format!(r#"{module} required username="{user}" password="{password}";"#),
    )
    .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_scram_logins_against_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, addr) = sasl_broker(dir.path(), &[]).await;

    // PLAIN, from the listener's JAAS users: an admin that makes SCRAM users.
    let admin = Admin::new(config(&addr, "PLAIN", "admin", "admin-pw"))
        .await
        .unwrap();
    for (mech, pw) in [
        (ScramMechanism::Sha256, "carol-256"),
        (ScramMechanism::Sha512, "carol-512"),
    ] {
        admin
            .set_user_scram_password("carol", mech, pw, 8192)
            .await
            .unwrap();
    }
    let users = admin.describe_user_scram_credentials(None).await.unwrap();
    assert_eq!(
        users["carol"],
        vec![
            (ScramMechanism::Sha256, 8192),
            (ScramMechanism::Sha512, 8192)
        ]
    );

    admin
        .create_topic(&NewTopic::new("scram-topic", 1))
        .await
        .unwrap();
    // SCRAM logins with the passwords the admin client salted; a produce goes through.
    for (mech, pw) in [
        ("SCRAM-SHA-256", "carol-256"),
        ("SCRAM-SHA-512", "carol-512"),
    ] {
        let p = Producer::new(ProducerConfig::new(config(&addr, mech, "carol", pw)))
            .await
            .unwrap();
        let meta = p
            .send(ProducerRecord::new("scram-topic").value("v"))
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(meta.offset >= 0);
        p.close().await.unwrap();
    }

    // A wrong password: the broker's message, at once, and not retried.
    for (mech, user, pw) in [
        ("PLAIN", "alice", "nope"),
        ("SCRAM-SHA-256", "carol", "carol-512"),
        ("SCRAM-SHA-512", "nobody", "x"),
    ] {
        let started = Instant::now();
        let err = Admin::new(config(&addr, mech, user, pw))
            .await
            .err()
            .unwrap();
        let Error::Authentication(msg) = &err else {
            panic!("{mech}: {err}")
        };
        assert!(msg.contains("Authentication failed"), "{mech}: {msg}");
        assert!(!err.is_retriable());
        assert!(started.elapsed() < Duration::from_secs(20), "not retried");
    }

    // librdkafka's sasl.username / sasl.password win over the JAAS config's.
    let mut c = config(&addr, "PLAIN", "admin", "admin-pw");
    c.set("sasl.mechanism", "SCRAM-SHA-256").unwrap();
    c.set("sasl.username", "carol").unwrap();
    c.set("sasl.password", "carol-256").unwrap();
    c.set(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="x" password="y";"#,
    )
    .unwrap();
    assert!(
        Admin::new(c).await.is_ok(),
        "sasl.username wins over the JAAS user"
    );

    // Deleting the SHA-512 credential: that login now fails.
    admin
        .delete_user_scram_credential("carol", ScramMechanism::Sha512)
        .await
        .unwrap();
    let err = Admin::new(config(&addr, "SCRAM-SHA-512", "carol", "carol-512"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Authentication(_)), "{err}");

    // ACL calls without an authorizer: SECURITY_DISABLED (54), as Kafka.
    let err = admin
        .describe_acls(&AclFilter::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(54), "{err}");
    let b = AclBinding {
        resource_type: 2,
        resource_name: "t".into(),
        pattern_type: 3,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: 3,
        permission: 3,
    };
    assert_eq!(admin.create_acls(&[b]).await.unwrap_err().code(), Some(54));
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthenticates_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, addr) = sasl_broker(dir.path(), &[("connections.max.reauth.ms", "1500")]).await;
    let security = config(&addr, "PLAIN", "alice", "alice-pw")
        .security
        .load()
        .unwrap();
    let conn = Connection::connect_secure(&addr, "reauth-test", Duration::from_secs(10), &security)
        .await
        .unwrap();
    // Requests keep going across several session lifetimes: the broker would close a connection
    // whose session expired without re-authentication.
    let v = conn.version::<MetadataRequest>(12).unwrap();
    let deadline = Instant::now() + Duration::from_millis(5000);
    let mut sent = 0;
    while Instant::now() < deadline {
        let resp = conn.send(&MetadataRequest::default(), v).await.unwrap();
        assert!(!resp.brokers.is_empty());
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent > 10);
    assert!(!conn.is_closed());

    // A connection without re-authentication (a bare connect, no SASL) is refused: the listener
    // wants SASL first.
    let bare = Connection::connect(&addr, "bare", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(bare.send(&MetadataRequest::default(), v).await.is_err());
    handle.shutdown().await.unwrap();
}
