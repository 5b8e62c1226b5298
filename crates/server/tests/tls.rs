//! HTTPS: `waihu serve --tls-self-signed` / `--tls-cert --tls-key` on a real
//! loopback socket, a real TLS client trusting only that certificate, HSTS,
//! certificate reload without a restart, and clear errors for bad files.
use std::time::Duration;

use waihu_server::tls::Tls;
use waihu_store::Store;

fn client_trusting(cert_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_hsts_and_a_certificate_reloaded_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([5; 32]))
        .await
        .unwrap();
    let tls = Tls::self_signed(dir.path()).unwrap();
    let first = tls.current_fingerprint();
    assert_eq!(first.len(), 32 * 3 - 1, "{first}");
    // Made once, then reused.
    assert_eq!(Tls::self_signed(dir.path()).unwrap().fingerprint, first);
    let cert_path = dir.path().join("tls/cert.pem");
    let key_path = dir.path().join("tls/key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's only: {mode:o}");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let store = store.clone();
        tokio::spawn(async move {
            waihu_server::serve_tls(
                listener,
                &tls,
                store,
                waihu_server::Config::default(),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        })
    };
    let url = format!("https://localhost:{}/api/openapi.json", addr.port());
    let client = client_trusting(&std::fs::read(&cert_path).unwrap());
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["strict-transport-security"],
        waihu_server::HSTS,
        "{:?}",
        r.headers()
    );
    // Plain HTTP to the TLS port gets no answer a client could mistake for one.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{}/api/openapi.json", addr.port()))
        .send()
        .await
        .is_err());
    // A client that does not trust the certificate is refused.
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(stranger.get(&url).send().await.is_err());
    // A silent client does not hold up the others.
    let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    // Renewal: new files in place; served within the watch interval, no restart.
    let other = tempfile::tempdir().unwrap();
    Tls::self_signed(other.path()).unwrap();
    let new_cert = std::fs::read(other.path().join("tls/cert.pem")).unwrap();
    // A broken renewal (certificate without its key) is not taken.
    std::fs::write(&cert_path, &new_cert).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "the old certificate is still served");
    std::fs::copy(other.path().join("tls/key.pem"), &key_path).unwrap();
    let renewed = client_trusting(&new_cert);
    let mut ok = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // A fresh client per try: no pooled connection from before.
        if renewed
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "the renewed certificate was not served within 5 s");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[test]
fn bad_certificate_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let e = Tls::from_files(&cert, &key).unwrap_err().to_string();
    assert!(
        e.contains("c.pem") && e.contains("reading certificates"),
        "{e}"
    );
    std::fs::write(&cert, "not pem at all").unwrap();
    std::fs::write(&key, "nor this").unwrap();
    let e = Tls::from_files(&cert, &key).unwrap_err().to_string();
    assert!(e.contains("c.pem") && e.contains("no CERTIFICATE"), "{e}");
    // A valid certificate with someone else's key.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    Tls::self_signed(a.path()).unwrap();
    Tls::self_signed(b.path()).unwrap();
    let e = Tls::from_files(
        &a.path().join("tls/cert.pem"),
        &b.path().join("tls/key.pem"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not fit the certificate"), "{e}");
}
