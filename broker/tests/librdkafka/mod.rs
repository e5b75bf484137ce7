//! librdkafka's numbered tests as a suite: which numbers a built `tests/` directory holds,
//! which of them cannot apply to Ferry's broker (`not_applicable.tsv`), one bounded run per
//! number ([`runner`]) and its result ([`outcome`]).

pub mod outcome;
pub mod runner;

use std::collections::BTreeMap;
use std::path::Path;

use outcome::Listed;

/// Tests that cannot apply to a single-node broker without transactions:
/// `test<TAB>reason[<TAB>expected failure]`. `test` is a number or an entry name
/// (`0103_transactions`). Without an expected failure the number is not run; with one, it
/// runs and a failure whose text contains it is reported as not applicable (so the parts
/// that do apply still count).
pub const NOT_APPLICABLE: &str = include_str!("not_applicable.tsv");

/// Numbers whose entries include ones for librdkafka's `noautocreate` scenario (a broker with
/// `auto.create.topics.enable=false`); they also run against a broker started so.
pub const NO_AUTO_CREATE: &[&str] = &["0045", "0107", "0111"];

/// Numbers run against a broker whose groups rebalance as soon as a member joins
/// (`--group-initial-rebalance-delay 0s`) instead of after Kafka's 3 s: 0081 creates some 36
/// groups one after another, and with the delay the whole test outgrows its own 180 s timeout
/// (its group cases need no members joining together).
pub const FAST_GROUPS: &[&str] = &["0081"];

/// Numbers run against a broker that requires SASL/SCRAM (`--sasl-users`), with the user in
/// `test.conf`, as librdkafka's SASL test clusters: 0135 swaps credentials at run time; 0142
/// re-authenticates, and skips itself unless the broker sets `connections.max.reauth.ms`
/// (KIP-368, which Ferry's broker does not; Kafka's default is off too).
pub const SASL: &[&str] = &["0135", "0142"];

/// The not-applicable list by test number or entry name.
///
/// # Panics
/// On a malformed line (the file is part of the suite).
pub fn not_applicable(tsv: &str) -> BTreeMap<String, Listed> {
    tsv.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut cells = line.split('\t');
            let key = cells.next().unwrap_or_default();
            let reason = cells.next().unwrap_or_default().trim();
            let expect = cells.next().map(str::trim).filter(|e| !e.is_empty());
            assert!(
                key.len() >= 4 && key[..4].bytes().all(|b| b.is_ascii_digit()),
                "not_applicable.tsv: {key:?} is not a test number or entry in {line:?}"
            );
            assert!(
                !reason.is_empty() && cells.next().is_none(),
                "not_applicable.tsv: want test<TAB>reason[<TAB>expected failure]: {line:?}"
            );
            let listed = Listed {
                reason: reason.to_owned(),
                expect: expect.map(str::to_owned),
            };
            (key.to_owned(), listed)
        })
        .collect()
}

/// The numbers of the regular tests (`0000`–`0999`; 1000+ need special setups, 8000+ are
/// manual) found as `NNNN-name.c` / `.cpp` sources in `dir`, sorted.
///
/// # Panics
/// When `dir` cannot be read.
pub fn test_numbers(dir: &Path) -> Vec<String> {
    let mut numbers: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".c") || name.ends_with(".cpp"))
        .filter_map(|name| {
            let (number, _) = name.split_once('-')?;
            (number.len() == 4 && number.starts_with('0') && number.parse::<u16>().is_ok())
                .then(|| number.to_owned())
        })
        .collect();
    numbers.sort();
    numbers.dedup();
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_applicable_list_parses_and_names_a_reason_for_each() {
        let list = not_applicable(NOT_APPLICABLE);
        assert!(!list.is_empty());
        assert!(list.values().all(|listed| !listed.reason.is_empty()));
        assert!(
            list.keys()
                .all(|key| key.len() == 4 || list[key].expect.is_some()),
            "an entry (not a whole number) runs, so it needs an expected failure"
        );
    }

    #[test]
    fn test_numbers_are_the_regular_sources_once_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        for file in [
            "0001-multiobj.c",
            "0053-stats_cb.cpp",
            "0053-stats.c",
            "8000-idle.cpp",
            "1000-special.c",
            "test.c",
            "0002-unkpart.o",
        ] {
            std::fs::write(dir.path().join(file), "").expect("write");
        }
        assert_eq!(test_numbers(dir.path()), ["0001", "0053"]);
    }
}
