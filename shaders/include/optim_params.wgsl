// Optimizer hyperparameters, one uniform buffer per model, rewritten once per
// step by writeOptimizerParams() (src/kernels/optimizer_params.ts), so that a
// learning-rate schedule needs no new pipeline or bind group.
struct OptimParams {
  lr: f32,        // learning rate of this step (after warmup/decay)
  eps: f32,       // Adagrad / Adam epsilon
  beta1: f32,     // Adam
  beta2: f32,     // Adam
  bias1: f32,     // Adam: 1 - beta1^t
  bias2: f32,     // Adam: 1 - beta2^t
  weight_decay: f32,
  step: u32,      // 1-based step number
}
