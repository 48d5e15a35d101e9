//! The node's credential for its hub, kept in `hub.json` in the data folder
//! (mode 0600): the hub's address, the node's token, and the hub's public
//! key that every receipt must verify with.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "hub.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolment {
    pub hub_url: String,
    pub node_id: String,
    pub district: String,
    pub token: String,
    pub hub_id: String,
    /// Ed25519 public key (hex) learned at enrolment.
    pub hub_key: String,
    /// A PEM file with the CA that signed the hub's certificate, when it is
    /// not one the system trusts.
    pub ca_cert: Option<PathBuf>,
    pub enrolled_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    #[error("this node is not enrolled with a hub; run `dangan-edge enrol --hub URL --code CODE`")]
    NotEnrolled,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Enrolment {
    pub fn load(data_dir: &Path) -> Result<Self, EnrolmentError> {
        let path = data_dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(EnrolmentError::NotEnrolled);
            }
            Err(source) => return Err(EnrolmentError::Read { path, source }),
        };
        serde_json::from_str(&text).map_err(|err| EnrolmentError::Damaged {
            path,
            message: err.to_string(),
        })
    }

    /// Writes the file durably, readable by the owner only.
    pub fn save(&self, data_dir: &Path) -> Result<(), EnrolmentError> {
        let path = data_dir.join(FILE_NAME);
        let temp = data_dir.join(format!("{FILE_NAME}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::File::options();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp)?;
            file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            crate::cache::sync_dir(data_dir)
        };
        write().map_err(|source| EnrolmentError::Write { path, source })
    }

    /// The CA certificate's PEM bytes, if one is configured.
    pub fn ca_cert_pem(&self) -> Result<Option<Vec<u8>>, EnrolmentError> {
        self.ca_cert
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|source| EnrolmentError::Read {
                    path: path.clone(),
                    source,
                })
            })
            .transpose()
    }
}
