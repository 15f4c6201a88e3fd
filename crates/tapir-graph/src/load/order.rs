//! The order nodes run in: a topological sort, or the cycle that prevents one, reported
//! at the reference that closes it; and the waves of nodes that can run side by side.

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use super::{Draft, Loader, nearest};
use crate::error::{ErrorKind, GraphError};
use crate::graph::{GraphInput, Node, ValueId};
use crate::schema::NetworkFile;

impl Loader<'_> {
    /// The nodes in an order where every node follows its inputs, or the cycle that prevents one.
    pub(super) fn topological_order(
        &self,
        inputs: &[GraphInput],
        drafts: &[Draft],
        file: &NetworkFile,
    ) -> Result<Vec<usize>, GraphError> {
        let mut dag = DiGraph::<usize, ()>::new();
        let vertices: Vec<NodeIndex> = (0..drafts.len()).map(|i| dag.add_node(i)).collect();
        for (index, draft) in drafts.iter().enumerate() {
            for input in &draft.inputs {
                if let ValueId::Node(from) = *input {
                    dag.add_edge(vertices[from], vertices[index], ());
                }
            }
        }
        let cycle = match toposort(&dag, None) {
            Ok(order) => return Ok(order.into_iter().map(|v| dag[v]).collect()),
            Err(cycle) => find_cycle(&dag, dag[cycle.node_id()]),
        };
        // Start at the node highest in the file: it reads one further down, which in a file
        // written top to bottom is the likely mistake.
        let first = cycle.iter().copied().min().unwrap_or(0);
        let at = cycle.iter().position(|&n| n == first).unwrap_or(0);
        let mut path: Vec<usize> = cycle[..cycle.len().saturating_sub(1)].to_vec();
        path.rotate_left(at);
        path.push(first);
        let last = path[path.len().saturating_sub(2)];
        let draft = &drafts[first];
        let reads = &drafts[last].name;
        let span = draft
            .inputs
            .iter()
            .position(|&v| v == ValueId::Node(last))
            .and_then(|i| draft.reads.get(i).copied().flatten())
            .unwrap_or(draft.place.key);
        let name = &draft.name;
        let (message, label) = if first == last {
            (
                format!("node \"{name}\" reads its own output"),
                format!("\"{name}\" reads itself"),
            )
        } else {
            let names: Vec<&str> = path.iter().map(|&i| drafts[i].name.as_str()).collect();
            (
                format!("the nodes form a cycle: {}", names.join(" -> ")),
                format!("computed from \"{name}\""),
            )
        };
        // The values defined above the node: what it can read without a cycle.
        let above: Vec<&str> = inputs
            .iter()
            .map(|i| i.name.as_str())
            .chain(file.nodes.0[..first].iter().map(|(n, _)| n.as_str()))
            .collect();
        let suggestion = match nearest(reads, above.iter().copied()) {
            Some(near) => format!("; did you mean \"{near}\"?"),
            None => above
                .last()
                .map(|a| format!(", such as \"{a}\""))
                .unwrap_or_default(),
        };
        Err(self
            .error(ErrorKind::Cycle, message)
            .at(span, label)
            .help(format!(
                "a network is a DAG: make \"{name}\" read a value defined above it{suggestion}"
            )))
    }
}

/// A simple cycle through `start` (a node on a cycle), as node weights, `start` first and
/// last. Depth-first search on an explicit stack: a long cycle must not overflow the call
/// stack.
fn find_cycle(dag: &DiGraph<usize, ()>, start: usize) -> Vec<usize> {
    let Some(first) = dag.node_indices().find(|&v| dag[v] == start) else {
        return vec![start, start];
    };
    let next_of = |here: NodeIndex| -> Vec<NodeIndex> {
        let mut next: Vec<NodeIndex> = dag.neighbors(here).collect();
        // Highest first, so that popping visits the node highest in the file first.
        next.sort_by_key(|n| std::cmp::Reverse(dag[*n]));
        next
    };
    let mut path = vec![first];
    let mut visited = std::collections::HashSet::from([first]);
    let mut pending = vec![next_of(first)];
    while let Some(candidates) = pending.last_mut() {
        let Some(n) = candidates.pop() else {
            pending.pop();
            path.pop();
            continue;
        };
        if n == first {
            path.push(n);
            return path.into_iter().map(|v| dag[v]).collect();
        }
        if visited.insert(n) {
            path.push(n);
            pending.push(next_of(n));
        }
    }
    vec![start, start]
}

/// Nodes grouped by depth (inputs have depth 0, a node one more than its deepest input).
pub(super) fn waves(nodes: &[Node], order: &[usize]) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; nodes.len()];
    for &n in order {
        depth[n] = 1 + nodes[n]
            .inputs
            .iter()
            .map(|v| match v {
                ValueId::Node(m) => depth[*m],
                ValueId::Input(_) => 0,
            })
            .max()
            .unwrap_or(0);
    }
    let mut waves = vec![Vec::new(); depth.iter().copied().max().unwrap_or(0)];
    for (n, &d) in depth.iter().enumerate() {
        waves[d - 1].push(n);
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_without_recursion() {
        let mut dag = DiGraph::<usize, ()>::new();
        let v: Vec<NodeIndex> = (0..4).map(|i| dag.add_node(i)).collect();
        dag.add_edge(v[0], v[1], ());
        dag.add_edge(v[1], v[2], ());
        dag.add_edge(v[2], v[3], ());
        dag.add_edge(v[2], v[0], ());
        assert_eq!(find_cycle(&dag, 1), [1, 2, 0, 1]);
        let mut long = DiGraph::<usize, ()>::new();
        let v: Vec<NodeIndex> = (0..100_000).map(|i| long.add_node(i)).collect();
        for w in v.windows(2) {
            long.add_edge(w[0], w[1], ());
        }
        long.add_edge(v[v.len() - 1], v[0], ());
        assert_eq!(find_cycle(&long, 0).len(), 100_001);
    }
}
