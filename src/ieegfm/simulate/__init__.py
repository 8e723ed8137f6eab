"""The built-in default dataset: simulated sEEG paired with the ambient audio the patient heard.

Nothing public pairs iEEG with what the patient heard, so :func:`simulate` draws both from a documented generative
model with a known ground truth (``truth.json``):

- audio (:mod:`ieegfm.simulate.scene`): eSpeak NG speech with word timings (:mod:`ieegfm.simulate.speech`),
  silences, room noise and non-speech sounds; more speech by day than at night;
- sEEG (:mod:`ieegfm.simulate.brain`): 1/f background, line noise, a flat and a noisy contact, ECG and DC
  channels, slow day-to-day gain drift, and contacts whose low-frequency and high-gamma activity follow the
  audio's log-mel features (:mod:`ieegfm.simulate.stimulus`) through lagged kernels.

Schedule
--------
``hours`` are split evenly over ``days`` calendar days; each day is cut into consecutive blocks of
``block_minutes`` (the last one shorter if needed; lengths in whole seconds). Day ``d`` (0-based) starts at
``start + d * 24 h + d * day_shift_hours``; the default shift ``-hours / days`` makes the days tile the clock
backwards from ``start``: with the defaults (4 h over 2 days from 08:00) day 1 runs 08:00-10:00 (daytime) and day 2
06:00-08:00 (night); 7 days of 2 h from 08:00 start at 08, 06, 04, 02, 00, 22 and 20 h. A block is daytime when
its midpoint lies in 08:00-22:00 UTC.

Output (under ``cfg.out``)
--------------------------
``recordings.tsv`` (subject, session, ieeg, audio, start_time, words), ``truth.json`` and a BIDS-like tree
``sub-<subject>/ses-day<N>/{ieeg,audio}/sub-<subject>_ses-day<N>_run-<RR>_{ieeg.edf,channels.tsv,audio.wav,
words.tsv}``. With ``task_minutes > 0`` also a task session (an audiobook heard in a quiet room, see
:func:`ieegfm.simulate.scene.render_narration`): ``recordings_task.tsv`` (with an ``events`` column) and
``sub-<subject>/ses-task/...task-listening_run-<RR>_{ieeg.edf,channels.tsv,events.tsv,audio.wav,words.tsv}``;
BIDS ``events.tsv`` rows are sentences (onset, duration, trial_type=sentence, value=text).
"""

from ieegfm.simulate.run import load_sentences, simulate, simulate_config
from ieegfm.simulate.schedule import BlockPlan, plan_blocks, plan_task

__all__ = ["simulate", "simulate_config", "BlockPlan", "plan_blocks", "plan_task", "load_sentences"]
