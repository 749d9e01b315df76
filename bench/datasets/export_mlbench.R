# bench/datasets/export_mlbench.R: write one data set of the R package mlbench
# (Debian package r-cran-mlbench) to a CSV file, in the package's row order,
# factors as their level names, missing values as empty fields.
#
#   Rscript bench/datasets/export_mlbench.R LetterRecognition /tmp/x.csv
#
# Called by bench/datasets/tabular.py; not meant to be run by hand.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) {
  stop("usage: Rscript export_mlbench.R DATASET OUT.csv")
}
suppressMessages(library(mlbench))
e <- new.env()
data(list = args[1], package = "mlbench", envir = e)
d <- get(args[1], envir = e)
for (j in seq_along(d)) {
  if (is.factor(d[[j]])) d[[j]] <- as.character(d[[j]])
}
write.csv(d, args[2], row.names = FALSE, na = "")
