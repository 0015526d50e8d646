"""Chapter 3: plausible wrong submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # entropy in bits while the target ln(perplexity) is in nats
    ("ch03", "entropy_in_bits",
     lambda nb: replace_in_cell(nb, "neighbour_distribution", "np.log(p[nonzero])", "np.log2(p[nonzero])"), 4),
    # a fixed bracket [0, 100] instead of doubling and halving: betas outside it are never reached
    ("ch03", "search_in_a_fixed_bracket",
     lambda nb: replace_in_cell(replace_in_cell(replace_in_cell(
         nb, "find_beta", "beta, beta_min, beta_max = 1.0, -math.inf, math.inf", "beta, beta_min, beta_max = 1.0, 0.0, 100.0"),
         "find_beta", "beta = 2 * beta if beta_max == math.inf else (beta + beta_max) / 2", "beta = (beta + beta_max) / 2"),
         "find_beta", "beta = beta / 2 if beta_min == -math.inf else (beta + beta_min) / 2", "beta = (beta + beta_min) / 2"), 4),
    # the factor 2 of SNE's conditional version instead of t-SNE's 4
    ("ch03", "gradient_with_factor_2",
     lambda nb: replace_in_cell(nb, "tsne_gradient", "grad = 4.0 *", "grad = 2.0 *"), 4),
    # q normalised per row (q_{j|i}) instead of over all pairs
    ("ch03", "gradient_with_q_per_row",
     lambda nb: replace_in_cell(nb, "tsne_gradient", "Q = W / W.sum()", "Q = W / W.sum(dim=1, keepdim=True)"), 6),
]
