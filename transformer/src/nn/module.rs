//! `Module`: what every layer and model has in common — the parameters it owns.

use autograd::{Element, Param};

/// A layer or a model: something that owns parameters, its sub-layers' included.
///
/// A module's parameters live in the [`autograd::ParamStore`] it was built in, under dotted
/// names (`blocks.layers.0.self_attn.in_proj_weight`); `named_parameters` lists just this
/// module's, as PyTorch's `module.named_parameters()` does, for a sub-layer as well as for a
/// whole model: to freeze it, count it, or give it its own learning rate.
///
/// There is no train/eval flag inside a module. Whether dropout is on is said by the
/// [`super::Ctx`] each forward pass takes — [`super::Ctx::train`] with a seed, or
/// [`super::Ctx::eval`] — so one model can be trained and evaluated side by side, and a
/// training run's dropout masks are reproducible.
///
/// ```
/// use autograd::ParamStore;
/// use rand::SeedableRng;
/// use transformer::nn::{Linear, Module};
///
/// let mut store = ParamStore::<f32>::new();
/// let layer = Linear::new(3, 2, true, store.prefix("proj"), &mut rand::rngs::StdRng::seed_from_u64(0));
/// let names: Vec<String> = layer.named_parameters().into_iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["proj.weight", "proj.bias"]);
/// assert_eq!(layer.num_parameters(), 3 * 2 + 2);
/// ```
pub trait Module<T: Element> {
    /// Calls `f` on every parameter the module owns, in the order they were created.
    fn visit_parameters(&self, f: &mut dyn FnMut(&Param<T>));

    /// Every parameter with its full name, in the order they were created.
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut out = Vec::new();
        self.visit_parameters(&mut |p| out.push((p.name().to_string(), p.clone())));
        out
    }

    /// How many numbers the parameters hold.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_parameters(&mut |p| n += p.shape().numel());
        n
    }
}

/// Implements [`Module`] by visiting each listed field: a parameter (`param`), an optional
/// parameter (`option`), a sub-module (`module`), an optional one (`option_module`) or a list of
/// sub-modules (`modules`).
macro_rules! impl_module {
    ($ty:ident { $($kind:ident $field:ident),* $(,)? }) => {
        impl<T: autograd::Element> $crate::nn::Module<T> for $ty<T> {
            fn visit_parameters(&self, f: &mut dyn FnMut(&autograd::Param<T>)) {
                $( $crate::nn::impl_module!(@visit $kind self.$field, f); )*
            }
        }
    };
    (@visit param $e:expr, $f:ident) => { $f(&$e) };
    (@visit option $e:expr, $f:ident) => { if let Some(p) = &$e { $f(p) } };
    (@visit module $e:expr, $f:ident) => { $crate::nn::Module::visit_parameters(&$e, $f) };
    (@visit modules $e:expr, $f:ident) => { for m in &$e { $crate::nn::Module::visit_parameters(m, $f) } };
    (@visit option_module $e:expr, $f:ident) => { if let Some(m) = &$e { $crate::nn::Module::visit_parameters(m, $f) } };
}
pub(crate) use impl_module;

#[cfg(test)]
mod tests {
    use super::Module;
    use crate::lm::{CharLM, LmConfig};
    use crate::{ModelConfig, Positional, Seq2Seq};
    use autograd::ParamStore;
    use rand::SeedableRng;

    /// Every model lists, as a module, exactly the parameters its store holds, in store order.
    #[test]
    fn models_list_every_parameter_of_their_store() {
        let rng = || rand::rngs::StdRng::seed_from_u64(0);
        for tie in [true, false] {
            let mut store = ParamStore::<f32>::new();
            let cfg = LmConfig {
                vocab_size: 9,
                d_model: 8,
                n_heads: 2,
                n_layers: 2,
                d_ff: 16,
                tie_output: tie,
                ..LmConfig::default()
            };
            let lm = CharLM::new(&cfg, &mut store, &mut rng());
            let names: Vec<String> = lm.named_parameters().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, store.names().collect::<Vec<_>>());
            assert_eq!(lm.num_parameters(), store.num_elements());
            assert_eq!(lm.blocks[1].named_parameters()[0].0, "blocks.layers.1.self_attn.in_proj_weight");

            let mut store = ParamStore::<f32>::new();
            let cfg = ModelConfig {
                vocab_size: 9,
                d_model: 8,
                n_heads: 2,
                d_ff: 16,
                tie_output: tie,
                positional: Positional::Learned,
                ..ModelConfig::default()
            };
            let model = Seq2Seq::new(&cfg, &mut store, &mut rng());
            let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, store.names().collect::<Vec<_>>());
        }
    }
}
