"""Chapter 11: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # each view's similarity with itself (1 / tau, the largest) left in the softmax as a negative
    ("ch11", "nt_xent_self_pair_among_negatives",
     lambda nb: replace_in_cell(nb, "nt_xent", 'logits = logits.masked_fill(self_pairs, float("-inf"))\n', ""), 4),
    # the temperature applied twice: the logits are divided by tau^2
    ("ch11", "nt_xent_temperature_twice",
     lambda nb: replace_in_cell(nb, "nt_xent", "logits = u @ u.T / temperature",
                                 "logits = u @ u.T / temperature / temperature"), 4),
    # the temperature forgotten
    ("ch11", "nt_xent_no_temperature",
     lambda nb: replace_in_cell(nb, "nt_xent", "logits = u @ u.T / temperature", "logits = u @ u.T"), 4),
    # dot products of unnormalised embeddings instead of cosine similarities
    ("ch11", "nt_xent_unnormalised",
     lambda nb: replace_in_cell(nb, "nt_xent", "u = F.normalize(torch.cat([z1, z2]), dim=1)",
                                 "u = torch.cat([z1, z2])"), 4),
    # the reference called instead of written: no points for this exercise
    ("ch11", "nt_xent_calls_course_lib",
     lambda nb: replace_in_cell(nb, "nt_xent", "    loss = F.cross_entropy(logits, partner)\n",
                                 "    from course_lib.contrastive import nt_xent as reference\n"
                                 "    loss = reference(z1, z2, temperature)\n"), 6),
    # the unbiased standard deviation: C is off by (n - 1) / n
    ("ch11", "barlow_unbiased_std",
     lambda nb: replace_in_cell(nb, "barlow_twins_loss", "a = (z1 - z1.mean(dim=0)) / z1.std(dim=0, correction=0)\n"
                                 "    b = (z2 - z2.mean(dim=0)) / z2.std(dim=0, correction=0)",
                                 "a = (z1 - z1.mean(dim=0)) / z1.std(dim=0)\n    b = (z2 - z2.mean(dim=0)) / z2.std(dim=0)"), 3),
    # the variance taken over the features of each sample instead of over the batch
    ("ch11", "vicreg_variance_wrong_axis",
     lambda nb: replace_in_cell(nb, "vicreg_loss", "std = torch.sqrt(z.var(dim=0) + eps)",
                                 "std = torch.sqrt(z.var(dim=1) + eps)"), 3),
    # the covariance's diagonal (the variances) left in the covariance term
    ("ch11", "vicreg_covariance_diagonal_in",
     lambda nb: replace_in_cell(nb, "vicreg_loss", "covariance = covariance + (off_diagonal ** 2).sum() / d",
                                 "covariance = covariance + (cov ** 2).sum() / d"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    ("ch11", "vicreg_name_error",
     lambda nb: replace_in_cell(nb, "vicreg_loss", "loss = lambda_ * invariance", "loss = lambda_ * invariances")),
]
