//! `botc compile` and `botc disasm` through the real binary.

use crate::{botc, flow_files, stdout};

fn out_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("botc-compile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn compile_writes_one_program_per_file_and_a_manifest() {
    let dir = out_dir("examples");
    let o = botc(&["compile", "flows/examples", "-o", &dir.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest")).expect("json");
    let programs = manifest["programs"].as_array().expect("list");
    assert_eq!(programs.len(), 4, "the YAML and DSL twins compile to the same four programs");
    for p in programs {
        let file = dir.join(p["file"].as_str().expect("file"));
        let bytes = std::fs::read(&file).expect("program written");
        assert_eq!(p["size"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(p["hash"].as_str().map(str::len), Some(64));
        assert!(p["source"].as_str().expect("source").starts_with("flows/examples/"));
    }
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn compile_writes_nothing_when_a_flow_has_errors() {
    let dir = out_dir("errors");
    let o = botc(&[
        "compile",
        "flows/examples/pizza_order.yaml",
        "flows/err/unknown_target.yaml",
        "-o",
        &dir.to_string_lossy(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing was written"));
    assert!(!dir.exists());
}

#[test]
fn disasm_of_every_ok_and_example_flow_is_stable() {
    let dir = out_dir("disasm");
    let o = botc(&["compile", "flows/ok", "flows/examples", "-o", &dir.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let yaml: Vec<String> = flow_files("flows/ok")
        .into_iter()
        .chain(flow_files("flows/examples"))
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    for f in yaml {
        let stem = std::path::Path::new(&f).file_stem().expect("stem").to_string_lossy().into_owned();
        let d = botc(&["disasm", &dir.join(format!("{stem}.botc")).to_string_lossy()]);
        assert_eq!(d.status.code(), Some(0));
        insta::assert_snapshot!(format!("disasm_{stem}"), stdout(&d));
    }
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn disasm_refuses_damaged_files_clearly() {
    let dir = out_dir("damaged");
    assert_eq!(botc(&["compile", "flows/ok/wait.yaml", "-o", &dir.to_string_lossy()]).status.code(), Some(0));
    let file = dir.join("wait.botc");
    let bytes = std::fs::read(&file).expect("written");
    for (what, damaged, expect) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "cut short"),
        ("not botc", b"hello".to_vec(), "not a .botc file"),
        (
            "flipped",
            {
                let mut b = bytes.clone();
                let n = b.len() - 3;
                b[n] ^= 0x40;
                b
            },
            "corrupted",
        ),
    ] {
        std::fs::write(&file, &damaged).expect("write");
        let o = botc(&["disasm", &file.to_string_lossy()]);
        assert_eq!(o.status.code(), Some(1), "{what}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{what}: {err}");
    }
    std::fs::remove_dir_all(dir).expect("cleanup");
}
