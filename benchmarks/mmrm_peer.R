# The R side of benchmarks/mmrm.py: times R mmrm on the same data and models, in one R process.
#
# Usage: Rscript benchmarks/mmrm_peer.R REFDATA_DIR REPEAT [CASE ...]
#        Rscript benchmarks/mmrm_peer.R --cli CASE DATA.csv   (one whole-process run: load mmrm,
#        read the CSV, fit, print the summary -- what `trialpipe mmrm` does)
# Prints one line per case: "RESULT<TAB>case<TAB>min seconds<TAB>median seconds<TAB>deviance<TAB>n"
# (deviance = -2 log-likelihood, REML), plus "VERSION<TAB>mmrm<TAB>x.y.z" and "LOAD<TAB>seconds"
# (the time library(mmrm) took). Each timing is mmrm() followed by summary() (the coefficient table
# with its df), after one untimed warm-up fit. R is optional for the project: benchmarks/mmrm.py
# runs this only when Rscript and the mmrm package are installed.

t_load <- system.time(suppressPackageStartupMessages(library(mmrm)))[["elapsed"]]
args <- commandArgs(trailingOnly = TRUE)

read_fev <- function(path) {
  d <- read.csv(path, na.strings = "NA")
  d$USUBJID <- factor(d$USUBJID, levels = unique(d$USUBJID))
  d$AVISIT <- factor(d$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
  d$ARMCD <- factor(d$ARMCD, levels = c("PBO", "TRT"))
  d$RACE <- factor(d$RACE)
  d$SEX <- factor(d$SEX, levels = c("Male", "Female"))
  d
}
read_bcva <- function(path) {
  d <- read.csv(path, na.strings = "NA")
  d$USUBJID <- factor(d$USUBJID, levels = unique(d$USUBJID))
  d$AVISIT <- factor(d$AVISIT, levels = sort(unique(d$AVISIT)))
  d$ARMCD <- factor(d$ARMCD)
  d$RACE <- factor(d$RACE)
  d
}
models <- list(
  "fev UN + KR" = list(FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID), "Kenward-Roger", read_fev),
  "bcva UN + Satterthwaite" = list(
    BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID), "Satterthwaite", read_bcva
  ),
  "bcva UN + KR" = list(BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID), "Kenward-Roger", read_bcva),
  "fev sp_gau + KR" = list(FEV1 ~ ARMCD + sp_gau(VISITN, VISITN2 | USUBJID), "Kenward-Roger", read_fev)
)
if (args[1] == "--cli") {
  m <- models[[args[2]]]
  d <- m[[3]](args[3])
  print(summary(mmrm(m[[1]], data = d, method = m[[2]])))
  quit(status = 0)
}
refdata <- args[1]
n_rep <- as.integer(args[2])
wanted <- if (length(args) > 2) args[-(1:2)] else character(0)
fev <- read_fev(file.path(refdata, "fev_data.csv"))
bcva <- read_bcva(file.path(refdata, "bcva_data.csv"))
cases <- list(
  "fev UN + KR" = function() {
    summary(mmrm(FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID), data = fev, method = "Kenward-Roger"))
  },
  "bcva UN + Satterthwaite" = function() {
    summary(mmrm(BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID), data = bcva, method = "Satterthwaite"))
  },
  "bcva UN + KR" = function() {
    summary(mmrm(BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID), data = bcva, method = "Kenward-Roger"))
  },
  "fev sp_gau + KR" = function() {
    summary(mmrm(FEV1 ~ ARMCD + sp_gau(VISITN, VISITN2 | USUBJID), data = fev, method = "Kenward-Roger"))
  }
)
cat(sprintf("VERSION\tmmrm\t%s\n", as.character(packageVersion("mmrm"))))
cat(sprintf("LOAD\t%.4f\n", t_load))
for (name in names(cases)) {
  if (length(wanted) && !(name %in% wanted)) next
  fn <- cases[[name]]
  s <- fn() # warm-up
  times <- numeric(n_rep)
  for (i in seq_len(n_rep)) {
    times[i] <- system.time(s <- fn())[["elapsed"]]
  }
  dev <- -2 * s$aic_list$logLik
  cat(sprintf("RESULT\t%s\t%.4f\t%.4f\t%.6f\t%d\n", name, min(times), median(times), dev, n_rep))
}
