//! Runs the logic of `examples/custom_op.rs`: the right rule passes, the wrong one is caught,
//! and the last two lines are the ones the example promises.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/custom_op.rs"]
#[allow(dead_code)]
mod example;

#[test]
fn the_example_passes_the_right_rule_and_catches_the_wrong_one() {
    let (right, wrong) = example::check_both().unwrap();
    assert!(right.passed(), "{right}");
    assert!(right.second.as_ref().is_some_and(|s| s.passed()), "{right}");
    assert!(!wrong.passed(), "{wrong}");
    assert!(
        !wrong.first.passed(),
        "the wrong rule fails at first order: {wrong}"
    );
    assert_eq!(
        example::summary(&right, &wrong),
        ["custom_op_check: passed", "wrong_rule_caught: true"]
    );
}
