//! TLS material made in the test: a CA, a server certificate for
//! 127.0.0.1 signed by it, and a client certificate for mutual TLS, as PEM
//! files in a temporary directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// The files of one test's PKI.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The CA certificate: what clients trust (`--tlsca`) and what the
    /// server verifies client certificates with.
    pub ca: PathBuf,
    /// The server's certificate and key, for `127.0.0.1` and `localhost`.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate signed by the CA (`--tlscert`).
    pub client_cert: PathBuf,
    /// Its private key (`--tlskey`).
    pub client_key: PathBuf,
}

impl Pki {
    /// A fresh CA with a server and a client certificate.
    pub fn new() -> anyhow::Result<Pki> {
        let dir = tempfile::tempdir().context("creating the PKI's directory")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "jetflow test CA");
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let (server_cert, server_key) = leaf(
            &ca,
            &ca_key,
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            &ca,
            &ca_key,
            vec!["jetflow-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let write = |name: &str, pem: String| -> anyhow::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        Ok(Pki {
            ca: write("ca.pem", ca.pem())?,
            server_cert: write("server.pem", server_cert)?,
            server_key: write("server-key.pem", server_key)?,
            client_cert: write("client.pem", client_cert)?,
            client_key: write("client-key.pem", client_key)?,
            _dir: dir,
        })
    }

    /// A `tls { … }` block for nats-server serving with this PKI; `verify`
    /// requires client certificates signed by the CA, `handshake_first`
    /// expects TLS before anything else.
    pub fn server_tls(&self, verify: bool, handshake_first: bool) -> String {
        let quoted = |p: &Path| format!("{:?}", p.display().to_string());
        let mut block = format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  timeout: 3\n",
            quoted(&self.server_cert),
            quoted(&self.server_key),
            quoted(&self.ca)
        );
        if verify {
            block.push_str("  verify: true\n");
        }
        if handshake_first {
            block.push_str("  handshake_first: true\n");
        }
        block.push_str("}\n");
        block
    }
}

/// A certificate for `names` with `usage`, signed by the CA; PEM of the
/// certificate and of its key.
fn leaf(
    ca: &Certificate,
    ca_key: &KeyPair,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(String, String)> {
    let mut params = CertificateParams::new(names)?;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca, ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}
