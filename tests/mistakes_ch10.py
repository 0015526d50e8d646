"""Chapter 10: plausible wrong and broken submissions for the nbgrader round trip."""
from mistakes import replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    # real pairs labelled 0 and generated pairs 1: the discriminator learns the opposite verdict
    ("ch10", "discriminator_labels_swapped",
     lambda nb: replace_in_cell(nb, "joint_discriminator_loss",
                                "loss = -F.logsigmoid(real).mean() - F.logsigmoid(-fake).mean()",
                                "loss = -F.logsigmoid(-real).mean() - F.logsigmoid(fake).mean()"), 4),
    # G(z) and E(x) not detached: the discriminator's step also pushes gradients into E and G
    ("ch10", "discriminator_step_not_detached",
     lambda nb: replace_in_cell(nb, "joint_discriminator_loss",
                                "z_hat = encoder(x).detach()", "z_hat = encoder(x)"), 4),
    ("ch10", "generator_output_not_detached",
     lambda nb: replace_in_cell(nb, "joint_discriminator_loss",
                                "x_tilde = generator(z).detach()", "x_tilde = generator(z)"), 4),
    # the minimax (saturating) loss: minimise V itself instead of swapping the labels
    ("ch10", "saturating_encoder_generator_loss",
     lambda nb: replace_in_cell(nb, "encoder_generator_loss",
                                "loss = -F.logsigmoid(-real).mean() - F.logsigmoid(fake).mean()",
                                "loss = F.logsigmoid(real).mean() + F.logsigmoid(-fake).mean()"), 3),
    # the encoder/generator loss with the discriminator's labels (no swap): it helps the discriminator
    ("ch10", "encoder_generator_labels_not_swapped",
     lambda nb: replace_in_cell(nb, "encoder_generator_loss",
                                "loss = -F.logsigmoid(-real).mean() - F.logsigmoid(fake).mean()",
                                "loss = -F.logsigmoid(real).mean() - F.logsigmoid(-fake).mean()"), 3),
    # calling the course's reference instead of writing the loss
    ("ch10", "discriminator_loss_from_course_lib",
     lambda nb: replace_in_cell(nb, "joint_discriminator_loss",
                                "loss = -F.logsigmoid(real).mean() - F.logsigmoid(-fake).mean()",
                                "from course_lib.adversarial import discriminator_loss\n"
                                "    loss = discriminator_loss(real, fake)"), 6),
    # every sample counted, near its centre or not
    ("ch10", "modes_quality_ignored",
     lambda nb: replace_in_cell(nb, "count_modes_covered",
                                "counts = np.bincount(nearest[high_quality], minlength=len(centres))",
                                "counts = np.bincount(nearest, minlength=len(centres))"), 3),
    # a mode counted as covered from a single sample on
    ("ch10", "modes_min_count_ignored",
     lambda nb: replace_in_cell(nb, "count_modes_covered", "covered = int((counts >= min_count).sum())",
                                "covered = int((counts > 0).sum())"), 3),
    # off by one: exactly min_count samples is not enough
    ("ch10", "modes_min_count_strict",
     lambda nb: replace_in_cell(nb, "count_modes_covered", "covered = int((counts >= min_count).sum())",
                                "covered = int((counts > min_count).sum())"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation).
BROKEN = [
    ("ch10", "name_error_in_mode_count",
     lambda nb: replace_in_cell(nb, "count_modes_covered", "nearest = distances.argmin(axis=1)",
                                "nearest = distance.argmin(axis=1)")),
]
