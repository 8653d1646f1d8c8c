//! The node's key file, `<data-dir>/<name>.priv`: the secp256k1 secret as 64 hex digits. Loaded if
//! it exists; otherwise generated from the operating system's randomness and written with mode
//! 0600. An existing file is never overwritten, whatever it holds: a corrupt or unreadable one
//! stops the node with an error that names the file and what is wrong with it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::Keypair;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("node name {0:?} cannot name a key file: use 1 to 64 letters, digits, '-' or '_'")]
    Name(String),
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the key file {path} is corrupt: {why}. It was left as it is; restore it from a backup, or move it away to generate a new key (a new key is a new address, to be added to the allowlist)"
    )]
    Corrupt { path: PathBuf, why: &'static str },
    #[error("cannot create the key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the operating system gave no randomness for a new key: {0}")]
    Entropy(String),
}

/// Where the key of node `name` lives under `data_dir`.
pub fn path(data_dir: &Path, name: &str) -> Result<PathBuf, KeyError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(KeyError::Name(name.to_owned()));
    }
    Ok(data_dir.join(format!("{name}.priv")))
}

/// The key of node `name`, and whether it was generated just now.
pub fn load_or_generate(data_dir: &Path, name: &str) -> Result<(Keypair, bool), KeyError> {
    let path = path(data_dir, name)?;
    match fs::read(&path) {
        Ok(bytes) => Ok((parse(&path, &bytes)?, false)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok((generate(data_dir, &path)?, true))
        }
        Err(source) => Err(KeyError::Read { path, source }),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Keypair, KeyError> {
    let corrupt = |why| KeyError::Corrupt {
        path: path.to_owned(),
        why,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("it is not text"))?;
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret)
        .map_err(|_| corrupt("it does not hold exactly 64 hex digits"))?;
    Keypair::from_secret(&secret).ok_or_else(|| {
        corrupt("its 64 hex digits are not a valid secp256k1 secret (zero, or not below the curve order)")
    })
}

fn generate(data_dir: &Path, path: &Path) -> Result<Keypair, KeyError> {
    let write_error = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|e| KeyError::Entropy(e.to_string()))?;
    let key = Keypair::from_entropy(entropy);
    fs::create_dir_all(data_dir).map_err(write_error)?;
    let mut options = fs::OpenOptions::new();
    // `create_new`: if another process wrote a key meanwhile, fail rather than replace it.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(format!("{}\n", hex::encode(key.secret_bytes())).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)?;
    Ok(key)
}
