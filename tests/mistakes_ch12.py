"""Chapter 12: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # ids_restore left as the shuffle itself instead of its inverse: the decoder would put tokens in wrong places
    ("ch12", "masking_restore_not_inverted",
     lambda nb: replace_in_cell(nb, "random_masking", "ids_restore = ids_shuffle.argsort(dim=1)",
                                 "ids_restore = ids_shuffle"), 6),
    # the mask ratio applied to the kept count: keeps 75% instead of hiding 75%
    ("ch12", "masking_ratio_on_wrong_count",
     lambda nb: replace_in_cell(nb, "random_masking", "keep = int(round((1 - mask_ratio) * length))",
                                 "keep = int(round(mask_ratio * length))"), 6),
    # one permutation shared by the whole batch: every image hides the same patches
    ("ch12", "masking_same_mask_every_sample",
     lambda nb: replace_in_cell(nb, "random_masking", "noise = torch.rand(n, length, generator=generator)",
                                 "noise = torch.rand(length, generator=generator).expand(n, length)"), 6),
    # a submission that hands the work to the course's reference
    ("ch12", "masking_calls_reference",
     lambda nb: replace_in_cell(nb, "random_masking", "    if not 0 <= mask_ratio < 1:",
                                 "    from course_lib.masked import random_masking as reference\n"
                                 "    return reference(x, mask_ratio, generator)\n    if not 0 <= mask_ratio < 1:"), 6),
    # every chosen token replaced (no unchanged 10%): the model never has to predict a token it can see
    ("ch12", "bert_no_unchanged_tokens",
     lambda nb: replace_in_cell(nb, "bert_mask", "to_random = chosen & (kind >= 0.8) & (kind < 0.9)",
                                 "to_random = chosen & (kind >= 0.8)"), 5),
    # always [MASK], then the random 10% on top: 90/10/0 instead of 80/10/10
    ("ch12", "bert_always_mask_token",
     lambda nb: replace_in_cell(nb, "bert_mask", "to_mask = chosen & (kind < 0.8)", "to_mask = chosen"), 5),
    # labels everywhere: the loss would score every visible token too
    ("ch12", "bert_labels_everywhere",
     lambda nb: replace_in_cell(nb, "bert_mask", "labels = torch.where(chosen, tokens, torch.full_like(tokens, -100))",
                                 "labels = tokens.clone()"), 5),
    # the loss over every patch, visible ones included
    ("ch12", "mae_loss_on_all_patches",
     lambda nb: replace_in_cell(nb, "masked_patch_loss", "loss = (per_patch * mask).sum() / mask.sum()",
                                 "loss = per_patch.mean()"), 3),
    # the mean of per-sample means: wrong when samples hide different numbers of patches
    ("ch12", "mae_loss_mean_of_sample_means",
     lambda nb: replace_in_cell(nb, "masked_patch_loss", "loss = (per_patch * mask).sum() / mask.sum()",
                                 "loss = ((per_patch * mask).sum(1) / mask.sum(1)).mean()"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    ("ch12", "name_error_in_masked_loss",
     lambda nb: replace_in_cell(nb, "masked_patch_loss", "loss = (per_patch * mask).sum() / mask.sum()",
                                 "loss = (per_patch * mask).sum() / mask_sum")),
]
