//! Cycles in a small directed graph (crates, or a crate's modules): each strongly connected component with one
//! shortest cycle through it, so a report names each tangle once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A graph: node → (node it points to → where that edge is declared).
pub type Graph<T> = BTreeMap<String, BTreeMap<String, T>>;

/// One shortest cycle (in order; the last node points back to the first) through each tangle of `graph` — a strongly
/// connected component where every node reaches every other — so a report names each tangle once. An acyclic graph
/// has none.
pub fn tangles<T>(graph: &Graph<T>) -> Vec<Vec<String>> {
    let reach: BTreeMap<&str, BTreeSet<&str>> = graph
        .keys()
        .map(|n| (n.as_str(), reachable(graph, n)))
        .collect();
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut found = Vec::new();
    for (&node, reached) in &reach {
        if covered.contains(node) || !reached.contains(node) {
            continue;
        }
        covered.extend(
            reached
                .iter()
                .filter(|&&other| reach.get(other).is_some_and(|r| r.contains(node))),
        );
        found.push(shortest_cycle(graph, node));
    }
    found
}

/// The edges of `cycle`, closing it: (a, b), (b, c), (c, a).
pub fn edges_of(cycle: &[String]) -> Vec<(&str, &str)> {
    let next = cycle.iter().cycle().skip(1);
    cycle
        .iter()
        .zip(next)
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// `a → b → c → a`.
pub fn describe(cycle: &[String]) -> String {
    let mut nodes = cycle.to_vec();
    nodes.extend(cycle.first().cloned());
    nodes.join(" → ")
}

fn neighbours<'a, T>(graph: &'a Graph<T>, node: &str) -> impl Iterator<Item = &'a str> {
    graph
        .get(node)
        .into_iter()
        .flat_map(|edges| edges.keys().map(String::as_str))
}

/// The nodes reachable from `from` over one edge or more.
fn reachable<'a, T>(graph: &'a Graph<T>, from: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = neighbours(graph, from).collect();
    while let Some(node) = todo.pop() {
        if seen.insert(node) {
            todo.extend(neighbours(graph, node));
        }
    }
    seen
}

/// A shortest path from `start` back to itself (breadth first); `start` must lie on a cycle.
fn shortest_cycle<T>(graph: &Graph<T>, start: &str) -> Vec<String> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue: VecDeque<&str> = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in neighbours(graph, node) {
            if next == start {
                let mut path = vec![node.to_owned()];
                let mut at = node;
                while at != start {
                    at = parent[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    unreachable!("{start} lies on a cycle")
}
