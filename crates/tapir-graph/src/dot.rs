//! The graph in Graphviz DOT (`tapir dot`), through `petgraph::dot`: ops and shapes on the nodes.

use petgraph::dot::{Config, Dot};
use petgraph::graph::DiGraph;

use crate::graph::{Graph, ValueId};
use crate::load::camel_case;

impl Graph {
    /// The graph as DOT text: one vertex per input and node, labelled with its op and
    /// per-sample shape; edges from each value to the nodes that read it.
    pub fn to_dot(&self) -> String {
        let mut dag = DiGraph::<String, String>::new();
        let inputs: Vec<_> = self
            .inputs
            .iter()
            .map(|i| dag.add_node(format!("{}\ninput {:?}", i.name, i.shape)))
            .collect();
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .map(|n| dag.add_node(format!("{}\n{} {:?}", n.name, camel_case(n.op), n.shape)))
            .collect();
        for (index, node) in self.nodes.iter().enumerate() {
            for (slot, &value) in node.inputs.iter().enumerate() {
                let from = match value {
                    ValueId::Input(i) => inputs[i],
                    ValueId::Node(n) => nodes[n],
                };
                let label = if node.inputs.len() > 1 {
                    slot.to_string()
                } else {
                    String::new()
                };
                dag.add_edge(from, nodes[index], label);
            }
        }
        let edge_attributes = |_, edge: petgraph::graph::EdgeReference<String>| {
            if edge.weight().is_empty() {
                String::new()
            } else {
                format!("label = \"{}\"", edge.weight())
            }
        };
        let node_attributes = |_, (index, _): (petgraph::graph::NodeIndex, &String)| {
            if inputs.contains(&index) {
                "shape = box".to_string()
            } else {
                "shape = ellipse".to_string()
            }
        };
        let dot = Dot::with_attr_getters(
            &dag,
            &[Config::EdgeNoLabel],
            &edge_attributes,
            &node_attributes,
        );
        format!("{dot}")
    }
}
