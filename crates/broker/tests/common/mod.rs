//! Shared pieces of the broker's integration tests: an in-process broker on an ephemeral port
//! in a temporary directory, and a minimal Kafka client that speaks one request at a time.

#![allow(dead_code)]

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
        let mut resp = self.read_frame().await.expect("a response");
        let corr = resp.get_i32();
        assert_eq!(corr, self.corr, "correlation id");
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
