"""Published results on the Dunhuang challenge test set (ARIN, IPTA 2022; the numbers in specs/arin.md), as data
to print beside ours. None = not reported. DSSIM there is 1 - SSIM, as in the challenge."""

from __future__ import annotations

SOURCE = "ARIN (IPTA 2022), Dunhuang challenge test set (100 images)"

CLEAN = {  # method -> metric -> value
    "CAR-DF2K": {"psnr": 16.65, "ssim": 0.67, "dssim": 0.33, "lpips": 0.33},
    "CAR": {"psnr": 27.70, "ssim": 0.84, "dssim": 0.16, "lpips": 0.17},
    "HINet-DR": {"psnr": 24.40, "ssim": 0.83, "dssim": 0.17, "lpips": 0.16},
    "HINet-DB": {"psnr": 33.32, "ssim": 0.90, "dssim": 0.10, "lpips": 0.08},
    "ARIN": {"psnr": 31.00, "ssim": 0.86, "dssim": 0.14, "lpips": 0.15},
    "Challenge 1st place": {"psnr": None, "ssim": 0.87, "dssim": 0.13, "lpips": None},
}

ROBUSTNESS = {  # method -> condition -> metric -> value; Gaussian noise sigma on the 0-255 scale, JPEG quality
    "ARIN": {"gn8": {"psnr": 30.40, "ssim": 0.84, "lpips": 0.15}, "gn16": {"psnr": 28.50, "ssim": 0.76, "lpips": 0.21},
             "jpeg60": {"psnr": 29.90, "ssim": 0.84, "lpips": 0.18},
             "jpeg30": {"psnr": 28.30, "ssim": 0.80, "lpips": 0.23}},
    "HINet-DB": {"gn8": {"psnr": 28.80, "ssim": 0.78, "lpips": 0.15},
                 "gn16": {"psnr": 23.20, "ssim": 0.55, "lpips": 0.35},
                 "jpeg60": {"psnr": 28.20, "ssim": 0.84, "lpips": 0.13},
                 "jpeg30": {"psnr": 25.30, "ssim": 0.77, "lpips": 0.21}},
}
