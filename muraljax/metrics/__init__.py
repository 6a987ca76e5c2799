"""Pure image-quality metrics and the image files that show results, shared by training, evaluation and restoration.

psnr_ssim.py (PSNR, SSIM, DSSIM, masked variants, which images a masked metric scores), lpips.py (LPIPS with its
shipped weights), consistency.py (CCON, TCON, ECON) and image_files.py (image grids, PNG writing). Nothing here
imports the trainer, the tasks or the evaluation application.
"""
