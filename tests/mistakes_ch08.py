"""Chapter 8: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # logvar read as log sigma: the noise is scaled by sigma^2 instead of sigma
    ("ch08", "reparameterize_logvar_as_log_sigma",
     lambda nb: replace_in_cell(nb, "reparameterize", "std = torch.exp(0.5 * logvar)", "std = torch.exp(logvar)"), 3),
    # the same confusion in the KL: sigma^2 = exp(2 logvar) and log sigma^2 = 2 logvar
    ("ch08", "kl_logvar_as_log_sigma",
     lambda nb: replace_in_cell(nb, "gaussian_kl", "0.5 * (torch.exp(logvar) + mu ** 2 - 1.0 - logvar)",
                                 "0.5 * (torch.exp(2 * logvar) + mu ** 2 - 1.0 - 2 * logvar)"), 3),
    # mean instead of sum over the latent dimensions: the KL of independent coordinates is their sum
    ("ch08", "kl_mean_over_latent_dimensions",
     lambda nb: replace_in_cell(nb, "gaussian_kl", "kl = per_dimension.sum(dim=1)", "kl = per_dimension.mean(dim=1)"), 3),
    # the KL of the whole batch instead of one per image
    ("ch08", "kl_summed_over_the_batch",
     lambda nb: replace_in_cell(nb, "gaussian_kl", "kl = per_dimension.sum(dim=1)", "kl = per_dimension.sum()"), 3),
    # F.binary_cross_entropy_with_logits' default reduction: a mean over the pixels, which shrinks the
    # reconstruction term by d and lets the KL dominate
    ("ch08", "elbo_mean_over_pixels",
     lambda nb: replace_in_cell(nb, "negative_elbo",
                                 'F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)',
                                 'F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean(dim=1)'), 4),
    # beta on the wrong term
    ("ch08", "elbo_beta_on_reconstruction",
     lambda nb: replace_in_cell(nb, "negative_elbo", "(reconstruction + beta * gaussian_kl(mu, logvar))",
                                 "(beta * reconstruction + gaussian_kl(mu, logvar))"), 4),
    # a sum over the batch instead of a mean
    ("ch08", "elbo_sum_over_batch",
     lambda nb: replace_in_cell(nb, "negative_elbo", "beta * gaussian_kl(mu, logvar)).mean()",
                                 "beta * gaussian_kl(mu, logvar)).sum()"), 4),
    # the logits passed through a sigmoid twice
    ("ch08", "elbo_sigmoid_of_logits",
     lambda nb: replace_in_cell(nb, "negative_elbo", "binary_cross_entropy_with_logits(logits, x,",
                                 "binary_cross_entropy_with_logits(torch.sigmoid(logits), x,"), 4),
    # the course's reference instead of an own implementation: refused while the tests run
    ("ch08", "kl_calls_course_reference",
     lambda nb: replace_in_cell(nb, "gaussian_kl", "kl = per_dimension.sum(dim=1)",
                                 "kl = course_lib.vae.gaussian_kl(mu, logvar)"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    ("ch08", "name_error_in_kl",
     lambda nb: replace_in_cell(nb, "gaussian_kl", "kl = per_dimension.sum(dim=1)", "kl = per_dimensions.sum(dim=1)")),
]
