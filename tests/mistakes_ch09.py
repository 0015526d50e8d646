"""Chapter 9: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

_REFERENCE_QUANTIZE = """    from course_lib.vqvae import nearest_codes as _nearest
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)
    codes = _nearest(flat.detach(), codebook.detach())
    e = codebook[codes].reshape(n, H, W, D).permute(0, 3, 1, 2)
    z_q = z_e + (e - z_e).detach()
    codes = codes.reshape(n, H, W)
"""

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # no straight-through estimator: z_q = e carries no gradient to the encoder
    ("ch09", "no_straight_through",
     lambda nb: replace_in_cell(nb, "vector_quantize", "z_q = z_e + (e - z_e).detach()", "z_q = e"), 4),
    # straight-through written the wrong way round: the gradient reaches the codebook and not z_e
    ("ch09", "straight_through_detaches_z_e",
     lambda nb: replace_in_cell(nb, "vector_quantize", "z_q = z_e + (e - z_e).detach()", "z_q = e + (z_e - e).detach()"), 4),
    # the farthest codeword
    ("ch09", "argmax_instead_of_argmin",
     lambda nb: replace_in_cell(nb, "vector_quantize", "codes = distances.argmin(dim=1)", "codes = distances.argmax(dim=1)"), 4),
    # the grid flattened without moving the channels last: rows mix positions and channels
    ("ch09", "flatten_without_permute",
     lambda nb: replace_in_cell(nb, "vector_quantize", "flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)",
                                 "flat = z_e.reshape(-1, D)"), 2),
    # the codebook term without its stop-gradient: it also pulls the encoder towards the codewords
    ("ch09", "codebook_term_without_stop_gradient",
     lambda nb: replace_in_cell(nb, "vqvae_loss", "codebook = ((z_e.detach() - e) ** 2)", "codebook = ((z_e - e) ** 2)"), 3),
    # the commitment term without its stop-gradient: it also moves the codebook
    ("ch09", "commitment_without_stop_gradient",
     lambda nb: replace_in_cell(nb, "vqvae_loss", "commitment = ((e.detach() - z_e) ** 2)", "commitment = ((e - z_e) ** 2)"), 3),
    # beta on the codebook term instead of the commitment term: the two terms have the same value, so
    # only the gradients (e moved by beta, z_e by 1) show it
    ("ch09", "beta_on_the_codebook_term",
     lambda nb: replace_in_cell(nb, "vqvae_loss", "loss = reconstruction + codebook + beta * commitment",
                                 "loss = reconstruction + beta * codebook + commitment"), 3),
    # F.mse_loss style: a mean over every entry instead of a sum per image
    ("ch09", "loss_mean_over_entries",
     lambda nb: replace_in_cell(nb, "vqvae_loss", "reconstruction = ((x - x_hat) ** 2).sum() / n",
                                 "reconstruction = ((x - x_hat) ** 2).mean()"), 3),
    # entropy in bits, exponentiated with e
    ("ch09", "perplexity_log2_with_exp",
     lambda nb: replace_in_cell(nb, "codebook_perplexity", "entropy = -(p * torch.log(p)).sum()",
                                 "entropy = -(p * torch.log2(p)).sum()"), 4),
    # counts instead of frequencies
    ("ch09", "perplexity_counts_not_normalised",
     lambda nb: replace_in_cell(nb, "codebook_perplexity", "p = counts / counts.sum()", "p = counts"), 4),
    # bincount without minlength and unused codes kept as 0 * log 0 = nan
    ("ch09", "perplexity_zero_log_zero",
     lambda nb: replace_in_cell(nb, "codebook_perplexity", "p = p[p > 0]\n", ""), 3),
    # a submission that calls the course's reference gets no points for it
    ("ch09", "quantize_calls_course_lib",
     lambda nb: replace_in_cell(nb, "vector_quantize",
                                 """    flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)
    distances = torch.cdist(flat.detach(), codebook.detach())
    codes = distances.argmin(dim=1)
    e = codebook[codes].reshape(n, H, W, D).permute(0, 3, 1, 2)
    z_q = z_e + (e - z_e).detach()
    codes = codes.reshape(n, H, W)
""", _REFERENCE_QUANTIZE), 4),
    ("ch09", "perplexity_calls_course_lib",
     lambda nb: replace_in_cell(nb, "codebook_perplexity", "    perplexity = torch.exp(entropy)\n",
                                 "    from course_lib import vqvae\n"
                                 "    perplexity = torch.tensor(vqvae.codebook_perplexity(codes, num_codes))\n"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation).
BROKEN = [
    ("ch09", "name_error_in_loss",
     lambda nb: replace_in_cell(nb, "vqvae_loss", "loss = reconstruction + codebook", "loss = reconstruction + code_book")),
]
