//! The deployment files: every path docker-compose.yaml mounts or builds from exists.

use std::path::Path;

#[test]
fn every_file_the_compose_file_references_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let compose = std::fs::read_to_string(root.join("docker-compose.yaml")).unwrap();
    let mut referenced = vec![];
    for line in compose.lines() {
        let line = line.trim();
        // Bind mounts: `- ./host/path:/container/path[:ro]`; builds: `build: <dir>`.
        if let Some(mount) = line.strip_prefix("- ./") {
            referenced.push(mount.split(':').next().unwrap().to_owned());
        } else if let Some(dir) = line.strip_prefix("build: ") {
            referenced.push(dir.to_owned());
            referenced.push(format!("{dir}/Dockerfile"));
        }
    }
    assert!(referenced.len() >= 3, "{referenced:?}");
    for path in &referenced {
        assert!(
            root.join(path).exists(),
            "docker-compose.yaml references {path}, which is missing"
        );
    }
    assert!(referenced.iter().any(|p| p == "init.sql"));
}
