//! Handshake + authentication over loopback TCP through the real driver:
//! dial, ECDH, key schedule, `static_key` proofs both ways, session start.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use distant_protocol::auth::StaticKey;
use distant_protocol::driver::client::{self, ClientOptions, DialFuture};
use distant_protocol::driver::server::{Server, ServerOptions};
use distant_protocol::driver::transport::dial_tcp;
use distant_protocol::handshake::{ClientConfig, ServerConfig};

fn connect(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let key = StaticKey::generate(&mut rand::rngs::OsRng);
    let addr = runtime.block_on(async {
        let config = ServerConfig {
            static_key: Some(key.clone()),
            ..ServerConfig::default()
        };
        let mut options = ServerOptions::new(config);
        options.max_sessions = 1_000_000;
        let (server, mut sessions) = Server::new(options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { server.serve_tcp(listener).await });
        // Sessions are dropped at once: this measures setup only.
        tokio::spawn(async move { while sessions.recv().await.is_some() {} });
        addr.to_string()
    });
    let config = ClientConfig {
        static_key: Some(key),
        ..ClientConfig::default()
    };
    let options = ClientOptions::new(config);
    let dialer = Arc::new(move || -> DialFuture {
        let addr = addr.clone();
        Box::pin(async move { dial_tcp(&addr, Duration::from_secs(5)).await })
    });

    c.bench_function("connect_tcp_loopback_static_key", |b| {
        b.to_async(&runtime).iter(|| {
            let options = options.clone();
            let dialer = dialer.clone();
            async move {
                let session = client::connect(options, dialer).await.expect("connect");
                drop(session);
            }
        })
    });
}

criterion_group!(benches, connect);
criterion_main!(benches);
