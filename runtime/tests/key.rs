//! The key file: generated once with mode 0600, loaded after, never overwritten, and every kind of
//! bad file named in a clear error.

use std::fs;
use std::path::PathBuf;

use runtime::key::{KeyError, load_or_generate};

fn data_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("key-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn generated_once_then_loaded() {
    let dir = data_dir("generate");
    let (key, created) = load_or_generate(&dir, "node-1").unwrap();
    assert!(created);
    let path = dir.join("node-1.priv");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (again, created) = load_or_generate(&dir, "node-1").unwrap();
    assert!(!created);
    assert_eq!(again.address(), key.address());
    let (other, _) = load_or_generate(&dir, "node-2").unwrap();
    assert_ne!(other.address(), key.address());
}

#[test]
fn a_corrupt_key_file_is_named_and_left_alone() {
    let dir = data_dir("corrupt");
    fs::create_dir_all(&dir).unwrap();
    let cases: [(&[u8], &str); 4] = [
        (b"not a key\n", "exactly 64 hex digits"),
        (&[0xff, 0xfe, 0x00], "not text"),
        (
            b"0000000000000000000000000000000000000000000000000000000000000000\n",
            "not a valid secp256k1 secret",
        ),
        (b"ab", "exactly 64 hex digits"),
    ];
    for (content, says) in cases {
        let path = dir.join("n.priv");
        fs::write(&path, content).unwrap();
        let error = load_or_generate(&dir, "n").unwrap_err();
        assert!(matches!(error, KeyError::Corrupt { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(says), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert_eq!(fs::read(&path).unwrap(), content, "never overwritten");
    }
}

#[test]
fn an_unreadable_key_file_or_a_bad_name_is_an_error() {
    let dir = data_dir("unreadable");
    fs::create_dir_all(dir.join("n.priv")).unwrap();
    let error = load_or_generate(&dir, "n").unwrap_err();
    assert!(matches!(error, KeyError::Read { .. }), "{error}");
    for name in ["", "../escape", "a/b", &"x".repeat(65)] {
        let error = load_or_generate(&dir, name).unwrap_err();
        assert!(matches!(error, KeyError::Name(_)), "{name}: {error}");
    }
}
