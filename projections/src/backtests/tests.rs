use super::*;

#[test]
fn thinning_keeps_first_last_and_at_most_the_cap() {
    let kept: Vec<usize> = thinned(5_000, MAX_SERIES_POINTS).collect();
    assert_eq!(kept.len(), MAX_SERIES_POINTS);
    assert_eq!((kept[0], *kept.last().unwrap()), (0, 4_999));
}
