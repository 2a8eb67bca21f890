//! Hostile or extreme profiles: always a clear error or a working filter, never a panic.

mod common;

use berth_seccomp::{compile, Error};
use oci_spec::runtime::LinuxSeccomp;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_bytes_and_mutated_profiles_never_panic() {
    let base = std::fs::read(common::shared_dir().join("client-specs/docker-run.json")).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&base).unwrap();
    let profile = serde_json::to_vec(&config["linux"]["seccomp"]).unwrap();
    let mut rng = Rng(42);
    let (mut compiled, mut rejected) = (0, 0);
    for _ in 0..1000 {
        let mut bytes = profile.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() % bytes.len() as u64) as usize;
            bytes[at] = b"0123456789\"{}[],:-eE.SCMP_ARCH_X86"[(rng.next() % 33) as usize];
        }
        if let Ok(cfg) = serde_json::from_slice::<LinuxSeccomp>(&bytes) {
            match compile(&cfg) {
                Ok(filter) => {
                    assert!(!filter.program().is_empty());
                    compiled += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
            }
        }
    }
    eprintln!("{compiled} mutated profiles compiled, {rejected} rejected");
    assert!(
        compiled > 50 && rejected > 0,
        "{compiled} compiled, {rejected} rejected"
    );
}

#[test]
fn too_many_instructions_is_an_error_not_a_broken_filter() {
    let names = ["read", "write", "open", "close", "getppid", "mmap"];
    let rules: Vec<serde_json::Value> = (0..700u64)
        .map(|i| {
            serde_json::json!({"names": [names[i as usize % names.len()]], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": i, "op": "SCMP_CMP_GT"}]})
        })
        .collect();
    let cfg: LinuxSeccomp = serde_json::from_value(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}),
    )
    .unwrap();
    match compile(&cfg) {
        Err(Error::TooLong(n)) => assert!(n > 4096),
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn many_conditions_on_one_argument_become_many_rules() {
    let args: Vec<serde_json::Value> = (0..200u64)
        .map(|v| serde_json::json!({"index": 2, "value": v * 3, "op": "SCMP_CMP_EQ"}))
        .collect();
    let filter = common::compile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid", "getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3, "args": args}]}),
    );
    let decide = |a: u64| {
        let data = berth_seccomp::SeccompData {
            nr: libc::SYS_getppid as u32,
            arch: berth_seccomp::AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args: [0, 0, a, 0, 0, 0],
        };
        filter.evaluate(&data).unwrap()
    };
    assert_eq!(decide(597), berth_seccomp::RET_ERRNO | 3);
    assert_eq!(decide(598), berth_seccomp::RET_ALLOW);
}

#[test]
fn features_report_what_is_implemented() {
    let f = berth_seccomp::features();
    assert_eq!(f["enabled"], true);
    assert_eq!(f["actions"].as_array().unwrap().len(), 9);
    assert_eq!(f["operators"].as_array().unwrap().len(), 7);
    let known = f["knownFlags"].as_array().unwrap();
    for flag in f["supportedFlags"].as_array().unwrap() {
        assert!(known.contains(flag));
    }
    // This project's kernel (6.18) has every flag.
    assert!(f["supportedFlags"].as_array().unwrap().len() >= 3);
}
