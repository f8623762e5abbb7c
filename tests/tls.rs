//! TLS on the gRPC listener with client certificates required: `dfscan
//! serve` with a certificate from a test CA, and the `dfscan` client over
//! `https://` with that CA, with and without its own certificate. Plain
//! HTTP/2, an untrusted server and a missing client certificate all fail.

mod common;

use std::path::Path;

use common::cluster::{read_jsonl, wait_for_port, write_images, Proc};
use common::{dfscan, model_dir};
use dfscan_testkit::free_port;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA, a server certificate for "localhost" and a client certificate,
/// as PEM files in `dir`.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, san) in [("server", "localhost"), ("client", "moderation-client")] {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![san.to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

#[test]
fn mutual_tls_lets_only_certified_clients_in() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path();
    certificates(certs);
    let file = |name: &str| certs.join(name).to_str().unwrap().to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = dfscan();
    serve
        .args(["serve", "--no-auth", "--listen", &listen, "--model"])
        .arg(model_dir("tiny-a"))
        .args(["--threads", "1", "--decode-threads", "1"])
        .env("DFSCAN_COORDINATOR__TLS__CERT_FILE", file("server.pem"))
        .env("DFSCAN_COORDINATOR__TLS__KEY_FILE", file("server.key"))
        .env("DFSCAN_COORDINATOR__TLS__CLIENT_CA_FILE", file("ca.pem"))
        .env("DFSCAN_COORDINATOR__TLS__CLIENT_CERT_REQUIRED", "true");
    let _serve = Proc::spawn("serve", serve);
    wait_for_port(port);

    let models = |url: &str, env: &[(&str, String)]| {
        let mut cmd = dfscan();
        cmd.args(["models", "--coordinator", url]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let https = format!("https://127.0.0.1:{port}");
    let trust = [
        ("DFSCAN_CLIENT__TLS_CA_FILE", file("ca.pem")),
        ("DFSCAN_CLIENT__TLS_DOMAIN", "localhost".to_string()),
    ];
    let mut certified = trust.to_vec();
    certified.extend([
        ("DFSCAN_CLIENT__TLS_CERT_FILE", file("client.pem")),
        ("DFSCAN_CLIENT__TLS_KEY_FILE", file("client.key")),
    ]);
    let refused = [
        (
            "plain HTTP/2",
            models(&format!("http://{listen}"), &certified),
        ),
        ("untrusted server", models(&https, &certified[2..])),
        ("no client certificate", models(&https, &trust)),
    ];
    for (case, out) in refused {
        assert!(!out.status.success(), "{case} got in");
    }
    let ok = models(&https, &certified);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("tiny-a"));

    // A job end to end over TLS.
    let images = write_images(tmp.path(), 6);
    let output = tmp.path().join("results.jsonl");
    let mut submit = dfscan();
    submit
        .args(["submit", "--coordinator", &https, "--output"])
        .arg(&output)
        .arg(&images);
    for (k, v) in &certified {
        submit.env(k, v);
    }
    let out = submit.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_jsonl(&output).len(), 6);
}
