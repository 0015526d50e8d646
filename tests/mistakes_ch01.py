"""Chapter 1: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import delete_cell, replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    ("ch01", "pca_without_centring",
     lambda nb: replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"), 4),
    ("ch01", "mds_in_increasing_order",
     lambda nb: replace_in_cell(nb, "mds_embedding", "[::-1][:k]", "[:k]"), 3),
    ("ch01", "eigenmap_keeps_the_constant",
     lambda nb: replace_in_cell(nb, "eigenmap_embedding", "F[:, 1:k + 1]", "F[:, :k]"), 5),
    ("ch01", "eigenmap_standard_problem",
     lambda nb: replace_in_cell(nb, "eigenmap_embedding", "scipy.linalg.eigh(L, np.diag(degree))",
                                 "np.linalg.eigh(L)"), 3),
    ("ch01", "double_center_without_half",
     lambda nb: replace_in_cell(nb, "double_center", "K = -0.5 * J @ D_squared @ J",
                                 "K = -J @ D_squared @ J"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    ("ch01", "syntax_error",
     lambda nb: replace_in_cell(nb, "pca_svd", "mu = X.mean(axis=0)", "mu = X.mean(axis=0"), ),
    # deleting the test that would fail does not help: nbgrader puts it back and grades it
    ("ch01", "deleted_test_cell",
     lambda nb: delete_cell(replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"), "test_pca_svd_hidden"),
     "pca_without_centring"),
    ("ch01", "runs_forever",
     lambda nb: replace_in_cell(nb, "double_center", "n = D_squared.shape[0]",
                                 "import time\n    while True: time.sleep(1)\n    n = 0")),
]


