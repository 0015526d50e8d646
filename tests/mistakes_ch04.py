"""Chapter 4: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # the negatives scored with s(+u_n . v_w): the loss then pulls the noise words towards v_w
    ("ch04", "negatives_wrong_sign",
     lambda nb: replace_in_cell(nb, "negative_sampling_loss", "F.logsigmoid(-negative_scores)",
                                 "F.logsigmoid(negative_scores)"), 5),
    # summed over the batch instead of averaged: the learning rate then depends on the batch size
    ("ch04", "loss_summed_over_batch",
     lambda nb: replace_in_cell(nb, "negative_sampling_loss", "loss = per_pair.mean()", "loss = per_pair.sum()"), 3),
    # log(sigmoid(x)): right for moderate scores, -inf once a score passes about 100 in float32
    ("ch04", "log_of_sigmoid_overflows",
     lambda nb: replace_in_cell(nb, "negative_sampling_loss",
                                 "per_pair = -F.logsigmoid(positive_score) - F.logsigmoid(-negative_scores)",
                                 "per_pair = -torch.log(torch.sigmoid(positive_score)) - "
                                 "torch.log(torch.sigmoid(-negative_scores))"), 1),
    # the plain unigram distribution: the power 3/4 forgotten
    ("ch04", "noise_not_smoothed",
     lambda nb: replace_in_cell(nb, "noise_distribution", "weights = counts ** power", "weights = counts"), 3),
    # off by one in the inverse CDF: every draw is the next word
    ("ch04", "draws_off_by_one",
     lambda nb: replace_in_cell(nb, "draw_negatives", 'np.searchsorted(cdf, u, side="right")',
                                 'np.searchsorted(cdf, u, side="right") + 1'), 5),
    # NumPy's global generator instead of rng: right distribution, not reproducible
    ("ch04", "draws_ignore_rng",
     lambda nb: replace_in_cell(nb, "draw_negatives", "u = rng.random(size) * cdf[-1]",
                                 "u = np.random.random(size) * cdf[-1]"), 2),
]
# Broken submissions that must still be graded: (assignment, name, mutation).
BROKEN = [
    ("ch04", "syntax_error_in_loss",
     lambda nb: replace_in_cell(nb, "negative_sampling_loss", "loss = per_pair.mean()", "loss = per_pair.mean(")),
]
