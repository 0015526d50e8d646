"""Chapter 5: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # gene part first: g sees its inputs in the wrong order (invisible when both sizes are equal)
    ("ch05", "concatenation_swapped",
     lambda nb: replace_in_cell(nb, "factorized_forward", "torch.cat([z_sample, z_gene], dim=-1)",
                                 "torch.cat([z_gene, z_sample], dim=-1)"), 6),
    # dim=1 works for a 1-D batch of indices only
    ("ch05", "concatenate_along_axis_1",
     lambda nb: replace_in_cell(nb, "factorized_forward", "dim=-1)).squeeze(-1)", "dim=1)).squeeze(-1)"), 4),
    # predictions of shape (B, 1): broadcasting against x of shape (B,) would make a (B, B) error matrix
    ("ch05", "prediction_not_squeezed",
     lambda nb: replace_in_cell(nb, "factorized_forward", "dim=-1)).squeeze(-1)", "dim=-1))"), 6),
    # subtract, then select: the value is right, but NaN from unobserved entries reaches the gradient
    ("ch05", "nan_reaches_gradient",
     lambda nb: replace_in_cell(nb, "observed_squared_error", "loss = ((X_hat[mask] - X[mask]) ** 2).mean()",
                                 "loss = ((X_hat - X) ** 2)[mask].mean()"), 3),
    # unobserved entries counted as zero errors: the loss is averaged over every entry
    ("ch05", "mean_over_all_entries",
     lambda nb: replace_in_cell(nb, "observed_squared_error", "loss = ((X_hat[mask] - X[mask]) ** 2).mean()",
                                 "loss = torch.where(mask, X_hat - torch.nan_to_num(X), 0.0).pow(2).mean()"), 4),
]
# Broken submissions that must still be graded: (assignment, name, mutation).
BROKEN = [
    ("ch05", "attribute_error_in_forward",
     lambda nb: replace_in_cell(nb, "factorized_forward", "self.gene_embedding(j)", "self.gene_embeding(j)")),
    # a forward pass that fills 12 GB: the graded kernel's memory cap (nbgrader_config.py) turns it into
    # a failed cell, instead of the machine's out-of-memory killer taking the kernel or the grader
    ("ch05", "allocates_12_gb_in_forward",
     lambda nb: replace_in_cell(nb, "factorized_forward", "        z_sample = self.sample_embedding(i)\n",
                                 "        z_sample = self.sample_embedding(i)\n"
                                 "        _ = torch.ones(3 * 2**30)  # 12 GB of float32, written\n")),
]
