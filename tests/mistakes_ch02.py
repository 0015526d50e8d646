"""Chapter 2: plausible wrong submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # forgets the 1/c in front: the stress is no longer scale-free (and every later result is off)
    ("ch02", "stress_without_normalisation",
     lambda nb: replace_in_cell(nb, "stress", "return ((d_star - d) ** 2 / d_star).sum() / d_star.sum()",
                                "return ((d_star - d) ** 2 / d_star).sum()"), 4),
    # pulls every pair with at least one point of the class, not only the pairs within it
    ("ch02", "pull_on_pairs_with_either_point",
     lambda nb: replace_in_cell(nb, "regularized_loss", "return torch.pdist(E[y == cls]).mean()",
                                "n = len(E)\n    i, j = torch.triu_indices(n, n, 1)\n"
                                "    return torch.pdist(E)[(y[i] == cls) | (y[j] == cls)].mean()"), 5),
    # never resets the gradients: each step follows the sum of all past gradients
    ("ch02", "training_without_zero_grad",
     lambda nb: replace_in_cell(nb, "fit_regularized", "        optimizer.zero_grad()\n", ""), 3),
]
