//! Every file in `tests/bad_graphs/` is a small network with one mistake, named
//! `kind__what.ron`. It opens with comments: what is wrong, then where the report must
//! point, ``// points at line 7: `"cnov"` ``. Each must fail to load with an error of that
//! kind (or, for `unused_node`, load with exactly one such warning), never panic, point at
//! that text, give a hint, and render as its snapshot says.

use std::path::Path;

use tapir_graph::{ErrorKind, Graph, GraphError};

/// The kind a file's name promises: the part before `__`.
fn expected_kind(stem: &str) -> ErrorKind {
    let (kind, _) = stem
        .split_once("__")
        .unwrap_or_else(|| panic!("{stem}: name the file `kind__what.ron`"));
    match kind {
        "syntax" => ErrorKind::Syntax,
        "unknown_op" => ErrorKind::UnknownOp,
        "unknown_reference" => ErrorKind::UnknownReference,
        "duplicate_name" => ErrorKind::DuplicateName,
        "cycle" => ErrorKind::Cycle,
        "arity" => ErrorKind::Arity,
        "hyperparameter" => ErrorKind::Hyperparameter,
        "shape" => ErrorKind::Shape,
        "structure" => ErrorKind::Structure,
        "unused_node" => ErrorKind::UnusedNode,
        other => panic!("{stem}: unknown kind `{other}`"),
    }
}

/// The line and text a file says its report points at.
fn expected_place(file: &str, text: &str) -> (usize, String) {
    let line = text
        .lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| l.strip_prefix("// points at line "))
        .unwrap_or_else(|| {
            panic!("{file}: say where the report points: // points at line N: `text`")
        });
    let (number, quoted) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("{file}: write `// points at line N: `text``"));
    let at = quoted
        .strip_prefix('`')
        .and_then(|q| q.strip_suffix('`'))
        .unwrap_or_else(|| panic!("{file}: quote the text in backticks"));
    let number = number
        .parse()
        .unwrap_or_else(|_| panic!("{file}: `{number}` is not a line number"));
    (number, at.to_string())
}

/// What every report must have: the expected place, a hint, no terminal escapes, and no
/// line wider than the fixed width.
fn check_report(file: &str, text: &str, error: &GraphError) -> String {
    let rendered = error.render();
    let (line, at) = expected_place(file, text);
    assert_eq!(
        error.line_column().map(|(l, _)| l),
        Some(line),
        "{file}: wrong line\n{rendered}"
    );
    assert_eq!(
        error.located_text(),
        Some(at.as_str()),
        "{file}: wrong text under the caret\n{rendered}"
    );
    assert!(error.help.is_some(), "{file}: no hint\n{rendered}");
    assert!(
        !rendered.contains('\u{1b}'),
        "{file}: terminal escapes in {rendered:?}"
    );
    for row in rendered.lines() {
        assert!(
            row.chars().count() <= GraphError::RENDER_WIDTH,
            "{file}: wider than {} columns: {row}",
            GraphError::RENDER_WIDTH
        );
    }
    rendered
}

fn report(path: &Path) -> String {
    let registry = tapir_ops::builtin_registry();
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("?");
    let stem = file.trim_end_matches(".ron");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(
        text.starts_with("// "),
        "{file}: say what is wrong in a first-line comment"
    );
    // A relative name keeps the snapshots independent of where the repository lives.
    let name = format!("tests/bad_graphs/{file}");
    let kind = expected_kind(stem);
    match Graph::parse(&name, &text, &registry) {
        Ok(graph) => {
            assert_eq!(kind, ErrorKind::UnusedNode, "{file}: loaded without error");
            assert_eq!(graph.warnings.len(), 1, "{file}: {:?}", graph.warnings);
            let warning = &graph.warnings[0];
            assert_eq!(warning.kind, kind, "{file}");
            check_report(file, &text, warning)
        }
        Err(error) => {
            assert_eq!(error.kind, kind, "{file}: {}", error.render());
            check_report(file, &text, &error)
        }
    }
}

#[test]
fn every_bad_graph_fails_with_a_located_hinted_error() {
    insta::glob!("bad_graphs/*.ron", |path| {
        insta::assert_snapshot!("report", report(path));
    });
}

#[test]
fn the_corpus_covers_every_kind_of_load_error() {
    let mut kinds: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_graphs"))
            .expect("the corpus folder")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(name.split_once("__")?.0.to_string())
            })
            .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "arity",
            "cycle",
            "duplicate_name",
            "hyperparameter",
            "shape",
            "structure",
            "syntax",
            "unknown_op",
            "unknown_reference",
            "unused_node"
        ]
    );
}

/// Every prefix of a good network, and the network with any one character deleted, loads
/// or fails with a report: the loader never panics on a half-written or mistyped file.
#[test]
fn no_truncated_or_mistyped_network_panics() {
    let registry = tapir_ops::builtin_registry();
    let graphs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphs");
    for name in ["cnn-2.ron", "inception.ron"] {
        let text = std::fs::read_to_string(graphs.join(name)).expect("a network in graphs/");
        let cuts = text.char_indices().map(|(i, _)| i);
        for at in cuts {
            let next = text[at..].chars().next().map_or(0, char::len_utf8);
            let deleted = format!("{}{}", &text[..at], &text[at + next..]);
            for variant in [&text[..at], deleted.as_str()] {
                if let Err(error) = Graph::parse(name, variant, &registry) {
                    assert!(!error.render().is_empty(), "{name}: empty report");
                }
            }
        }
    }
}
