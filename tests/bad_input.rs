//! Hostile files through the real binary: oversized, non-UTF-8, binary noise. Each gets a
//! clear diagnostic and exit 1, never a crash.

use crate::{botc, stdout};

fn temp(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("botc-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    p.to_string_lossy().into_owned()
}

#[test]
fn a_100_mb_file_is_refused_with_the_limit() {
    let p = temp("huge.yaml", &vec![b'#'; 100 * 1024 * 1024]);
    let o = botc(&["check", &p]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("E0003") && out.contains("limited to 10485760 bytes"), "{out}");
    std::fs::remove_file(p).expect("cleanup");
}

#[test]
fn non_utf8_is_refused_with_its_offset() {
    let p = temp("latin1.yaml", b"flow: caf\xe9\nstart: a\n");
    let o = botc(&["check", &p]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("E0004") && out.contains("offset 9, line 1"), "{out}");
}

#[test]
fn binary_noise_is_a_syntax_error_not_a_crash() {
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x7f).collect();
    let p = temp("noise.yaml", &noise);
    let o = botc(&["check", &p]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}
