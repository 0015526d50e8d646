"""Homework 1: plausible wrong and broken submissions for the nbgrader round trip.

Only the automatically graded points count here: the written answers are graded by hand.
"""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # reports the stress of the start, not of the returned map
    ("hw1", "sammon_reports_the_first_stress",
     lambda nb: replace_in_cell(nb, "sammon_map", "E, S = result.embedding, result.stress",
                                "E, S = result.embedding, result.history[0]"), 2),
    # ignores the perplexity it was given
    ("hw1", "tsne_with_perplexity_5",
     lambda nb: replace_in_cell(nb, "tsne_map", "perplexity=perplexity, seed=0", "perplexity=5.0, seed=0"), 3),
    # counts each point as its own nearest neighbour
    ("hw1", "knn_counts_the_point_itself",
     lambda nb: replace_in_cell(nb, "per_type_accuracy", "    np.fill_diagonal(D, np.inf)\n", ""), 2),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    # a syntax error in part 3: parts 1, 2 and part 4's own check must still be graded
    ("hw1", "tsne_cell_syntax_error",
     lambda nb: replace_in_cell(nb, "tsne_map", "E_tsne = tsne_map(Z, 30.0)", "E_tsne = tsne_map(Z, 30.0")),
]
