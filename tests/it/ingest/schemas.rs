//! The JSON Schemas in `config/schemas/` are the types' own: this test
//! fails when a payload type changes and the files were not written again
//! (`cargo run --no-default-features --bin huddle-aggregator -- schemas`),
//! or when a file is there that no topic has.

use std::collections::BTreeSet;
use std::path::Path;

use huddle_board::aggregator::schema::{catalogue, file_text};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/schemas");
const REGENERATE: &str =
    "cargo run --no-default-features --bin huddle-aggregator -- schemas --out config/schemas";

#[test]
fn the_checked_in_schemas_match_the_types() {
    let mut drifted = Vec::new();
    for t in catalogue() {
        let path = Path::new(DIR).join(&t.file);
        let want = file_text(&t.schema);
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(_) => drifted.push(format!("{} differs from its type", t.file)),
            Err(e) => drifted.push(format!("{} cannot be read: {e}", t.file)),
        }
    }
    assert!(
        drifted.is_empty(),
        "the schemas drifted from the types:\n  {}\nIf the change is deliberate, write them again: {REGENERATE}",
        drifted.join("\n  ")
    );
}

#[test]
fn no_schema_file_is_left_without_a_topic() {
    let known: BTreeSet<String> = catalogue().into_iter().map(|t| t.file).collect();
    let entries = std::fs::read_dir(DIR).unwrap_or_else(|e| panic!("cannot read {DIR}: {e}"));
    let stray: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The folder's README.md documents the contract; it is no schema.
        .filter(|f| f != "README.md" && !known.contains(f))
        .collect();
    assert!(
        stray.is_empty(),
        "files in {DIR} that no topic has: {stray:?}"
    );
}

#[test]
fn every_schema_is_valid_json_schema_2020_12_with_a_title() {
    for t in catalogue() {
        assert_eq!(
            t.schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{}",
            t.file
        );
        assert!(t.schema["title"].is_string(), "{} has no title", t.file);
    }
}

/// A validator for the checked-in schema of `file`.
fn validator(file: &str) -> jsonschema::Validator {
    let path = Path::new(DIR).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{file} is not a valid schema: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, file: &str, payload: &str) {
    let value: serde_json::Value = serde_json::from_str(payload).unwrap();
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{file} refuses {payload}: {errors:?}");
}

#[test]
fn every_event_a_simulated_board_writes_fits_its_schema_and_a_broken_one_does_not() {
    use huddle_board::kiosk::config::KioskConfig;
    use huddle_board::kiosk::simulate::{board_config, run_offline, SimOptions};
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/kiosk.toml");
    let mut base = KioskConfig::load(Path::new(shipped)).unwrap();
    base.storage.data_dir = dir.path().to_owned();
    let opts = SimOptions {
        boards: 2,
        first: 1,
        huddles: 12,
        rate: 0.0,
        data_dir: dir.path().join("sim"),
        ack_timeout: std::time::Duration::from_secs(1),
        publish: false,
        latency: false,
    };
    run_offline(&base, &opts).unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..opts.boards {
        let c = board_config(&base, i, &opts.data_dir);
        let store =
            huddle_board::kiosk::store::Store::open(&c.database_path(), &c.board.id).unwrap();
        for line in store.events_since(0).unwrap() {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            let kind = value["kind"].as_str().unwrap().to_owned();
            let file = format!("event.{kind}.schema.json");
            let v = validator(&file);
            assert_valid(&v, &file, &line);
            if seen.insert(kind) {
                // The same event with its seq at 0 or its data emptied is refused.
                let mut bad = value.clone();
                bad["seq"] = 0.into();
                assert!(!v.is_valid(&bad), "{file} takes seq 0");
                let mut bad = value.clone();
                bad["data"] = serde_json::json!({});
                assert!(!v.is_valid(&bad), "{file} takes empty data");
            }
        }
    }
    for kind in [
        "huddle.started",
        "attendance.tapped",
        "huddle.closed",
        "observation.recorded",
    ] {
        assert!(
            seen.contains(kind),
            "the simulator wrote no {kind}: {seen:?}"
        );
    }
}

#[test]
fn the_aggregators_roster_and_ack_payloads_fit_their_schemas() {
    let roster = concat!(env!("CARGO_MANIFEST_DIR"), "/config/roster.csv");
    let rosters = huddle_board::aggregator::roster::load(Path::new(roster)).unwrap();
    let v = validator("roster.schema.json");
    for r in &rosters {
        assert_valid(
            &v,
            "roster.schema.json",
            &serde_json::to_string(&r.message).unwrap(),
        );
    }
    let ack = huddle_board::wire::payload::Ack {
        board: "b1".into(),
        seq: 4,
        at: chrono::Utc::now(),
        incarnations: vec![huddle_board::wire::payload::IncarnationAck {
            incarnation: "0193aa".into(),
            seq: 7,
            chain: huddle_board::wire::event::chain_start("0193aa"),
        }],
    };
    assert_valid(
        &validator("ack.schema.json"),
        "ack.schema.json",
        &serde_json::to_string(&ack).unwrap(),
    );
    assert_valid(
        &validator("online.schema.json"),
        "online.schema.json",
        "true",
    );
    assert!(!validator("online.schema.json").is_valid(&serde_json::json!("yes")));
}

#[test]
fn the_readme_topic_table_names_every_schema() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/schemas/README.md"
    ))
    .unwrap();
    for t in catalogue() {
        // Event and board alert schemas are named by pattern in the table.
        let named = readme.contains(&format!("`{}`", t.file))
            || (t.file.starts_with("event.") && readme.contains("`event.{kind}.schema.json`"))
            || (t.file.starts_with("alert.") && readme.contains("`alert.{kind}.schema.json`"));
        assert!(
            named,
            "config/schemas/README.md's topic table does not name {}",
            t.file
        );
    }
}
