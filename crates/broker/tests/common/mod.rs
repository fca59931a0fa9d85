//! Shared pieces of the broker's integration tests: an in-process broker on an ephemeral port
//! in a temporary directory, and a minimal Kafka client that speaks one request at a time.

#![allow(dead_code)]

pub mod records;

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use runnel_broker::{Broker, BrokerHandle};
use runnel_config::BrokerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A broker running in this process.
pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub overrides: Vec<(String, String)>,
}

pub fn config(dir: &std::path::Path, port: u16, extra: &[(String, String)]) -> BrokerConfig {
    let mut o = vec![
        (
            "listeners".to_string(),
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        (
            "log.dirs".to_string(),
            dir.join("data").display().to_string(),
        ),
        ("node.id".to_string(), "1".to_string()),
    ];
    o.extend_from_slice(extra);
    BrokerConfig::load(None, &[], &o)
        .expect("valid test config")
        .config
}

impl TestBroker {
    pub async fn start(extra: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let overrides: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let handle = Broker::start(config(dir.path(), 0, &overrides))
            .await
            .unwrap();
        let addr = handle.bound[0].1;
        TestBroker {
            handle: Some(handle),
            addr,
            dir,
            overrides,
        }
    }

    /// Clean shutdown, then a start on the same port and directory.
    pub async fn restart(&mut self) {
        self.handle.take().unwrap().shutdown().await.unwrap();
        self.restart_from_stopped().await;
    }

    /// Starts again after the handle was shut down by the test.
    pub async fn restart_from_stopped(&mut self) {
        let handle = Broker::start(config(self.dir.path(), self.addr.port(), &self.overrides))
            .await
            .unwrap();
        self.handle = Some(handle);
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A minimal client: one request in flight.
pub struct Client {
    pub stream: TcpStream,
    corr: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        Client { stream, corr: 0 }
    }

    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let corr = self.send_only(req, version).await;
        self.read_response::<R>(version, corr).await
    }

    /// Sends a request without reading its answer; its correlation id.
    pub async fn send_only<R: Request>(&mut self, req: &R, version: i16) -> i32 {
        self.corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str("runnel-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).unwrap();
        req.encode(&mut buf, version).unwrap();
        let n = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&buf).await.unwrap();
        self.corr
    }

    /// Reads the next answer, asserting it is the one to the request with correlation id `corr`.
    pub async fn read_response<R: Request>(&mut self, version: i16, corr: i32) -> R::Response {
        let mut resp = self.read_frame().await.expect("a response");
        assert_eq!(resp.get_i32(), corr, "correlation id");
        let resp_header_version = if R::KEY == 18 {
            0
        } else {
            R::Response::header_version(version)
        };
        if resp_header_version >= 1 {
            let tags = resp.get_u8();
            assert_eq!(tags, 0);
        }
        R::Response::decode(&mut resp, version).unwrap()
    }

    /// Sends raw bytes (a whole frame including its size prefix).
    pub async fn send_raw(&mut self, frame: &[u8]) {
        let _ = self.stream.write_all(frame).await;
    }

    /// Reads one response frame; None when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).await.is_err() {
            return None;
        }
        let n = i32::from_be_bytes(size) as usize;
        let mut body = vec![0u8; n];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker closed the connection (within 5 s).
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Creates a topic (replication factor 1) and asserts it was created.
pub async fn create_topic(c: &mut Client, name: &str, partitions: i32) {
    use kafka_protocol::messages::{create_topics_request, CreateTopicsRequest, TopicName};
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    assert_eq!(c.send(&create, 7).await.topics[0].error_code, 0);
}

/// Free loopback ports (bound and released; fine for a test).
pub fn free_ports(n: usize) -> Vec<u16> {
    let socks: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// A cluster of combined nodes (broker and controller) in this process, each with its own
/// directory, client port and controller port; node ids are 1..=n.
pub struct TestCluster {
    pub nodes: Vec<Option<BrokerHandle>>,
    pub dirs: Vec<tempfile::TempDir>,
    pub ports: Vec<u16>,
    pub extra: Vec<(String, String)>,
}

impl TestCluster {
    /// Starts `n` nodes together (each waits for a quorum) with extra config keys. Logs go to
    /// the test's output when RUST_LOG is set.
    pub async fn start(n: usize, extra: &[(&str, &str)]) -> TestCluster {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let mut c = TestCluster {
            nodes: (0..n).map(|_| None).collect(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            ports: free_ports(2 * n),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let starts: Vec<_> = (0..n)
            .map(|i| tokio::spawn(Broker::start(c.config(i))))
            .collect();
        for (i, s) in starts.into_iter().enumerate() {
            c.nodes[i] = Some(s.await.unwrap().unwrap());
        }
        c
    }

    /// Node `i`'s configuration (node id i + 1).
    pub fn config(&self, i: usize) -> BrokerConfig {
        let n = self.nodes.len();
        let voters: Vec<String> = (0..n)
            .map(|j| format!("{}@127.0.0.1:{}", j + 1, self.ports[2 * j + 1]))
            .collect();
        let mut o = vec![
            (
                "listeners".to_string(),
                format!(
                    "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    self.ports[2 * i],
                    self.ports[2 * i + 1]
                ),
            ),
            (
                "log.dirs".to_string(),
                self.dirs[i].path().join("data").display().to_string(),
            ),
            ("node.id".to_string(), (i + 1).to_string()),
            (
                "controller.listener.names".to_string(),
                "CONTROLLER".to_string(),
            ),
            ("controller.quorum.voters".to_string(), voters.join(",")),
        ];
        o.extend_from_slice(&self.extra);
        BrokerConfig::load(None, &[], &o)
            .expect("valid cluster config")
            .config
    }

    /// The broker state of a running node.
    pub fn broker(&self, i: usize) -> std::sync::Arc<Broker> {
        self.nodes[i].as_ref().expect("node running").broker.clone()
    }

    /// The client listeners of every node, comma-separated.
    pub fn bootstrap(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("127.0.0.1:{}", self.ports[2 * i]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running node sees every node registered and unfenced and agrees on the
    /// active controller.
    pub async fn wait_formed(&self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect();
        self.wait_until("cluster formed", 30, || {
            let live = running.iter().all(|i| {
                let img = self.broker(*i).image();
                running
                    .iter()
                    .all(|j| img.brokers.get(&(*j as i32 + 1)).is_some_and(|b| !b.fenced))
            });
            let controllers: std::collections::HashSet<_> = running
                .iter()
                .map(|i| self.broker(*i).controller_id())
                .collect();
            live && controllers.len() == 1 && !controllers.contains(&None)
        })
        .await;
    }

    /// Polls `cond` every 50 ms; panics after `secs`.
    pub async fn wait_until(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within {secs} s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Clean shutdown of node `i`.
    pub async fn stop(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].take() {
            h.shutdown().await.unwrap();
        }
    }

    /// Starts node `i` again on its directory and ports.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i] = Some(Broker::start(self.config(i)).await.unwrap());
    }

    /// Shuts every running node down.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}
