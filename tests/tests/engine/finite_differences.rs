//! Every op's gradient agrees with central differences in f64 (relative error < 1e-6), with a
//! non-trivial upstream gradient, on the fixture's inputs (broadcast, size-1 and empty shapes).

use crate::cases::{CaseFn, cases, fixture};
use autograd::{GradcheckOptions, gradcheck, gradgradcheck};

/// Runs `gradcheck` (or `gradgradcheck`) on one case at the fixture's inputs.
pub fn check_case(name: &str, f: CaseFn, second_order: bool) -> Result<(), String> {
    let fx = fixture(name);
    let options = GradcheckOptions::default();
    let result = if second_order {
        gradgradcheck(|xs| f(xs, &fx.aux), &fx.inputs, options)
    } else {
        gradcheck(|xs| f(xs, &fx.aux), &fx.inputs, options)
    };
    result.map_err(|e| format!("{name}: {e}"))
}

#[test]
fn every_op_passes_gradcheck() {
    let failures: Vec<String> = cases().into_iter().filter_map(|(name, f)| check_case(name, f, false).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
