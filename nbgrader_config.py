"""nbgrader configuration for the course (run nbgrader from the repository root).

Source notebooks (with solutions and hidden tests) live in solutions/<assignment>/,
and `nbgrader generate_assignment` writes the student versions to
notebooks/<assignment>/. `make release` regenerates all of them.
"""
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "representation-learning"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Student submissions are collected here and graded into autograded/ and feedback/;
# all three stay out of git.
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A bad submission must get a grade, never crash the grading run:
# - a cell that runs forever is interrupted after this many seconds and marked as failed;
c.Execute.timeout = 600
# - after that interrupt, a kernel deep in a long tensor operation can take more than nbgrader's
#   4 s to report back; wait longer, and if it still does not, go on grading instead of dropping
#   the whole submission.
c.Execute.iopub_timeout = 30
c.Execute.raise_on_iopub_timeout = False
# - a test cell a student deleted is put back (and graded) rather than aborting the notebook.
c.OverwriteCells.add_missing_cells = True
