//! `distant-bridge forward` through the manager: a forward outlives the
//! command that opened it, `--list` shows it, `--close` ends it; bad specs
//! and ports in use are clear errors.

mod manager_support;

use manager_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn with_server(args: &[&str]) -> Vec<String> {
    let server = std::path::Path::new(BIN).with_file_name("distant-server");
    let mut v = Vec::new();
    if server.exists() {
        v.push("--server-binary".to_string());
        v.push(server.to_string_lossy().into_owned());
    }
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

async fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    let args = with_server(args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args, b"").await
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_list_close_through_the_manager() {
    let env = Env::new("forward");
    // The "remote" service: answers each connection with a greeting.
    let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = service.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"hello from the remote\n").await;
            });
        }
    });

    let (code, _, err) = run(&env, &["connect", "local"]).await;
    assert_eq!(code, 0, "{err}");
    let local = free_port().await;
    let spec = format!("{local}:localhost:{service_port}");
    let (code, out, err) = run(&env, &["forward", &spec]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "forwarding 127.0.0.1:{local} -> localhost:{service_port}"
        )),
        "{out}"
    );

    // The command has exited; the forward lives in the manager.
    let mut s = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).await.unwrap();
    assert_eq!(got, "hello from the remote\n");

    let (code, out, err) = run(&env, &["forward", "--list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("127.0.0.1:{local}")), "{out}");
    assert!(out.contains(&format!("localhost:{service_port}")), "{out}");

    // The same local port again is refused, saying why.
    let (code, _, err) = run(&env, &["forward", &spec]).await;
    assert_ne!(code, 0);
    assert!(err.contains("already in use"), "{err}");

    let (code, out, err) = run(&env, &["forward", "--close", &local.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("closed"), "{out}");
    assert!(TcpStream::connect(("127.0.0.1", local)).await.is_err());
    let (_, out, _) = run(&env, &["forward", "--list"]).await;
    assert!(out.contains("no forwards"), "{out}");
    let (code, _, err) = run(&env, &["forward", "--close", &local.to_string()]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no forward listens"), "{err}");

    let (code, _, err) = run(&env, &["forward", "80:"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("not a port number"), "{err}");
}
