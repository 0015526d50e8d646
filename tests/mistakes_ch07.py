"""Chapter 7: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # the central mistake of denoising: the target is the corrupted input, so copying is optimal again
    ("ch07", "denoising_against_noisy_input",
     lambda nb: replace_in_cell(nb, "denoising_loss", "x_hat = model(corrupt(x))\n    loss = ((x - x_hat)",
                                 "x_tilde = corrupt(x)\n    x_hat = model(x_tilde)\n    loss = ((x_tilde - x_hat)"), 3),
    # rho_hat averaged over the code units instead of over the batch
    ("ch07", "kl_mean_over_units",
     lambda nb: replace_in_cell(nb, "sparse_kl_penalty", "rho_hat = z.mean(dim=0)", "rho_hat = z.mean(dim=1)"), 3),
    # the sigmoid's slope h(1 - h) not squared
    ("ch07", "contractive_slope_not_squared",
     lambda nb: replace_in_cell(nb, "contractive_penalty", "slope_squared = (h * (1 - h)) ** 2",
                                 "slope_squared = h * (1 - h)"), 3),
    # off by one: tau one rank too high, so fewer normal samples are flagged than allowed
    ("ch07", "threshold_off_by_one",
     lambda nb: replace_in_cell(nb, "choose_threshold", "tau = scores[n - 1 - allowed]",
                                 "tau = scores[min(n - allowed, n - 1)]"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    ("ch07", "name_error_in_kl",
     lambda nb: replace_in_cell(nb, "sparse_kl_penalty", "penalty = kl.sum()", "penalty = kl_sum()")),
]
